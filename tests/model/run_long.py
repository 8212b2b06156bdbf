"""Run the model-based test long: `python tests/model/run_long.py --steps N --seed S`.

Runs episodes of `--episode` steps (each on a fresh state file, seeds S, S+1, ...) until N steps
have been taken, then prints the steps run and the violations by check, with a reproduction of
the first violation of each check. Exit 0 only with 0 violations.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--episode", type=int, default=80, help="steps per fresh state file")
    parser.add_argument("--no-kills", action="store_true", help="no killed ticks")
    parser.add_argument("--quiet", action="store_true", help="no reproductions")
    args = parser.parse_args(argv)
    for key in [k for k in os.environ if k.startswith("CAMPCTL_")]:
        del os.environ[key]
    totals: Counter = Counter()
    first: dict[str, tuple[int, str, str]] = {}
    steps = episodes = kills = 0
    accepted: Counter = Counter()
    seed = args.seed
    while steps < args.steps:
        length = min(args.episode, args.steps - steps)
        with tempfile.TemporaryDirectory(prefix="campctl-model-") as tmp:
            episode = Episode(Path(tmp), seed, length, kills=not args.no_kills)
            os.chdir(tmp)
            episode.run()
        steps += episode.steps_run
        episodes += 1
        kills += len(episode.model.kills)
        accepted.update(episode.accepted)
        for check, found in episode.violations.items():
            totals[check] += len(found)
            if found and check not in first:
                step = int(found[0].split()[1])
                first[check] = (seed, found[0], episode.reproduction(step))
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
    print(f"violations: {sum(totals.values())}")
    if not args.quiet:
        for check, (seed_of, text, repro) in first.items():
            print(f"\n== first {check} (seed {seed_of}): {text}\n{repro}")
    return 0 if not totals else 1


if __name__ == "__main__":
    sys.exit(main())
