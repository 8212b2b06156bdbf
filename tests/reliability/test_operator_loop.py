"""Ticks, a daemon and an operator loop together; nothing delivered while paused.

The workload lives in operator_workload.py (also run at full size by the reliability script);
the focused tests below pin the pause hand-over rule on its own.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from operator_workload import SIZES, _env, measure
from receivers import WebhookReceiver

NO_HANG = 900  # seconds: a guard against a hung process, never a pass/fail budget


def test_operator_loop_beside_ticks_and_a_daemon(tmp_path):
    """Bounded by counts: each operator makes its number of actions and each tick loop its
    number of ticks however long a loaded machine takes for them."""
    size = SIZES["small"]
    f = measure(tmp_path, size="small", seed=0)
    assert f["messages"] > 1000, f
    assert f["operator_actions"] >= 2 * size["actions"], f  # plus the final resumes
    assert f["operator_pause_run"] >= 1, f
    assert f["ticks"] >= 2 * size["ticks"] and f["daemon_cycles"] >= size["daemon_cycles"], f
    assert f["duplicates"] == 0 and f["duplicates_by_contact_run"] == 0, f
    assert f["restart_chain_duplicates"] == 0, f
    assert f["delivered_while_paused"] == 0, f
    assert f["delivered_after_stop_total"] == 0, f  # a stop waits for the message in flight
    assert f["arrived_not_recorded_sent"] == 0 and f["sent_not_arrived"] == 0, f
    assert f["invalid_actions_accepted"] == 0, f
    assert f["invalid_actions_rejected"] == f["invalid_actions_tried"], f
    assert f["tracebacks"] == 0 and f["bad_exits"] == 0 and f["tick_failures"] == 0, f
    assert f["drained"] and f["daemon_exit"] == 0 and f["final_tick_exit"] == 0, f
    assert f["ok"], f


def _campctl(state, *args, check=True):
    env = {**_env(), "CAMPCTL_BUSY_TIMEOUT": "30000"}  # the pause may wait out a 5 s batch
    proc = subprocess.run([sys.executable, "-m", "campctl", "--state", str(state), *args],
                          capture_output=True, text=True, env=env, timeout=NO_HANG)
    if check:
        assert proc.returncode == 0, (args, proc.stderr)
    return proc


@pytest.mark.parametrize("target", ["run", "instance"])
def test_a_pause_commits_only_after_the_batch_in_flight_is_handed_over(tmp_path, target):
    """A tick hands batches of 50 to a webhook that takes 0.1 s a message, 30 s for the whole
    audience (a loaded machine starts the pause command well within that); a pause issued
    meanwhile returns once the message in flight is handed over and recorded, the tick stops
    its batch there, and nothing arrives after the pause. Without the hand-over gate the pause
    commits at once and the rest of the batch arrives after it."""
    state = tmp_path / "s.db"
    contacts = 300
    csv = tmp_path / "c.csv"
    csv.write_text("id,email,first_name\n" + "".join(
        f"c{i:03d},c{i:03d}@example.org,N\n" for i in range(contacts)))
    with WebhookReceiver(delay=0.1) as hook:
        plan = ("stages:\n  - {name: main, controlled_by_plan: true}\n---\n"
                "kind: Plan\nname: p\ntransition: sent\nschedule: {type: manual}\n"
                "stages:\n  - {campaign: slow, stage: main}\n") if target == "instance" else ""
        (tmp_path / "d.yaml").write_text(
            f"kind: Channel\nname: hook\ntype: webhook\nurl: {hook.url}\n---\n"
            "kind: Campaign\nname: slow\ntimezone: UTC\ntype: one-off\nchannel: hook\n"
            'audience: {all: true}\nmessage: {subject: "Hi", body: "Hello"}\n'
            "schedule: {queue: immediately, send: after_queue}\n" + plan)
        _campctl(state, "init")
        _campctl(state, "contacts", "import", str(csv))
        _campctl(state, "apply", str(tmp_path / "d.yaml"))
        _campctl(state, "submit", "campaign", "slow")
        _campctl(state, "approve", "campaign", "slow")
        if target == "instance":
            for verb in ("submit", "approve", "start"):
                _campctl(state, verb, "plan", "p")
        else:
            _campctl(state, "start", "campaign", "slow")
        tick = subprocess.Popen([sys.executable, "-m", "campctl", "--state", str(state), "tick"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_env())
        while not hook.keys() and tick.poll() is None:
            time.sleep(0.01)
        assert hook.keys(), "the tick ended without delivering"
        ident = "1"
        paused = _campctl(state, "pause", target, ident, "--note", "hold")
        returned = time.time()
        hook.delay = 0  # the rest may go fast: the check is that nothing more arrives
        # The pause waited for the message in flight; the tick then stopped its batch there
        # and gave the rest back unsent.
        _, err = tick.communicate(timeout=NO_HANG)
        assert tick.returncode == 0 and "Traceback" not in err, err
        late = [key for key, at, _ in hook.arrivals() if at > returned]
        assert late == [], f"{len(late)} messages arrived after the pause returned"
        held = len(hook.keys())
        assert 0 < held < contacts, paused.stderr
        _campctl(state, "tick")
        assert len(hook.keys()) == held  # still paused: a tick sends nothing
        _campctl(state, "resume", target, ident, "--note", "go")
        _campctl(state, "tick")
        assert sorted(hook.keys()) == sorted(set(hook.keys())) and len(hook.keys()) == contacts
