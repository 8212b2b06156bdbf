"""Run the model-based test long: `python tests/model/run_long.py --steps N --seed S`.

Runs episodes of `--episode` steps (each on a fresh state file, seeds S, S+1, ...) until N steps
have been taken, then prints the steps run and the violations by check, with the command lines
that led to the first violation of each check (`--shrink`: replayed without the steps it does
not need). Exit 0 only with 0 violations.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from model_support import CHECK_NAMES, Episode


def first_step(episode: Episode, check: str) -> int:
    return int(episode.violations[check][0].split()[1])


def replay(seed: int, script: list) -> Episode:
    with tempfile.TemporaryDirectory(prefix="campctl-model-") as tmp:
        return Episode(Path(tmp), seed, 0, script=script).run()


def shrink(episode: Episode, check: str, budget: int) -> Episode:
    """Remove chunks of steps, then single steps, as long as the replay still violates
    `check` (at most `budget` replays)."""
    best = episode.script_of(first_step(episode, check))
    result, tries, size = episode, 0, max(1, len(best) // 2)
    while size >= 1 and tries < budget:
        start = 0
        while start < len(best) and tries < budget:
            candidate = best[:start] + best[start + size:]
            tries += 1
            attempt = replay(episode.seed, candidate)
            if attempt.violations.get(check):
                result = attempt
                best = candidate[:first_step(attempt, check)]
            else:
                start += size
        size //= 2
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--episode", type=int, default=80, help="steps per fresh state file")
    parser.add_argument("--no-kills", action="store_true", help="no killed ticks")
    parser.add_argument("--quiet", action="store_true", help="no reproductions")
    parser.add_argument("--list", action="store_true", help="print every violation")
    parser.add_argument("--shrink", type=int, default=0, metavar="REPLAYS",
                        help="shorten each first violation's reproduction with up to REPLAYS "
                             "replays")
    args = parser.parse_args(argv)
    for key in [k for k in os.environ if k.startswith("CAMPCTL_")]:
        del os.environ[key]
    totals: Counter = Counter()
    accepted: Counter = Counter()
    first: dict[str, Episode] = {}
    steps = episodes = kills = 0
    seed = args.seed
    while steps < args.steps:
        length = min(args.episode, args.steps - steps)
        with tempfile.TemporaryDirectory(prefix="campctl-model-") as tmp:
            episode = Episode(Path(tmp), seed, length, kills=not args.no_kills).run()
        steps += episode.steps_run
        episodes += 1
        kills += len(episode.model.kills)
        accepted.update(episode.accepted)
        for check, found in episode.violations.items():
            totals[check] += len(found)
            if args.list:
                print("".join(f"  seed {seed} {check}: {text}\n" for text in found), end="")
            if found and check not in first:
                first[check] = episode
        print(f"episode seed {seed}: {episode.steps_run} steps, {len(episode.model.kills)} "
              f"kills, {len(episode.arrivals)} messages, "
              f"{episode.total_violations()} violations", flush=True)
        seed += 1
    print(f"\nsteps run: {steps} in {episodes} episodes (seeds {args.seed}..{seed - 1}), "
          f"ticks killed mid-hand-over: {kills}")
    print("accepted operator commands: " + ", ".join(
        f"{verb} {n}" for verb, n in sorted(accepted.items())))
    print("violations by check:")
    for name in CHECK_NAMES:
        print(f"  {name:28s} {totals[name]}")
    print(f"violations: {sum(totals.values())}", flush=True)
    if not args.quiet:
        for check, episode in first.items():
            if args.shrink:
                episode = shrink(episode, check, args.shrink)
            step = first_step(episode, check)
            print(f"\n== first {check} (seed {episode.seed}): {episode.violations[check][0]}\n"
                  f"{episode.reproduction(step)}", flush=True)
    return 0 if not totals else 1


if __name__ == "__main__":
    sys.exit(main())
