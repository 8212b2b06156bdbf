"""Rules across fields of one definition (schedule order, scenario step graph) and references."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from campctl.definitions.types import Ctx, did_you_mean
from campctl.definitions.yamlsrc import Node


@dataclass
class Ref:
    """A reference to resolve once every file is read: kind and name, or a plan stage."""

    kind: str  # "Segment" | "Channel" | "stage"
    name: str
    node: Node
    ctx: Ctx
    stage: str | None = None
    stage_node: Node | None = None


def dig(node: Node | None, *keys: str | int) -> Node | None:
    for key in keys:
        if node is None:
            return None
        if isinstance(key, int):
            node = node.items[key] if node.kind == "seq" and key < len(node.items) else None
        else:
            node = node.get(key)
    return node


def _get(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _instant(text: Any, tz: str | None) -> datetime | None:
    from campctl.timeutil import parse_local_datetime

    if not isinstance(text, str) or tz is None:
        return None
    try:
        return parse_local_datetime(text, tz)
    except ValueError:
        return None


def check(kind: str, spec: dict, root: Node, ctx: Ctx, refs: list[Ref]) -> None:
    {"Campaign": _campaign, "Plan": _plan, "Scenario": _scenario, "Segment": _segment,
     "Channel": _channel, "FrequencyCap": _frequency_cap}[kind](spec, root, ctx, refs)


def _segment(spec: dict, root: Node, ctx: Ctx, refs: list[Ref]) -> None:
    return None


def _channel(spec: dict, root: Node, ctx: Ctx, refs: list[Ref]) -> None:
    return None


def _frequency_cap(spec: dict, root: Node, ctx: Ctx, refs: list[Ref]) -> None:
    """No message type twice (a cap counts each type once)."""
    types = spec.get("message_types")
    if not isinstance(types, list):
        return
    seen: dict[str, Node] = {}
    for index, value in enumerate(types):
        node = dig(root, "message_types", index)
        if not isinstance(value, str) or node is None:
            continue
        if value in seen:
            first = seen[value]
            ctx.error(node, f"message_types[{index + 1}]: duplicate message type {value!r} "
                            f"(first at {first.line}:{first.col})", code="CC214")
        else:
            seen[value] = node


def _audience_refs(spec: Any, node: Node | None, ctx: Ctx, refs: list[Ref]) -> None:
    segment = _get(spec, "segment")
    if isinstance(segment, str) and node is not None and node.get("segment") is not None:
        refs.append(Ref("Segment", segment, node.get("segment"), ctx))  # type: ignore[arg-type]


def _channel_ref(spec: Any, node: Node | None, ctx: Ctx, refs: list[Ref]) -> None:
    channel = _get(spec, "channel")
    if isinstance(channel, str) and node is not None and node.get("channel") is not None:
        refs.append(Ref("Channel", channel, node.get("channel"), ctx))  # type: ignore[arg-type]


def _campaign(spec: dict, root: Node, ctx: Ctx, refs: list[Ref]) -> None:
    _audience_refs(spec.get("audience"), root.get("audience"), ctx, refs)
    _channel_ref(spec, root, ctx, refs)
    stages = spec.get("stages")
    if isinstance(stages, list):
        _stage_names(stages, root, ctx, refs)
    ctype = spec.get("type")
    if ctype == "one-off" and root.get("schedule") is None and not _plan_only(root):
        ctx.error(root, "missing required key 'schedule' (a one-off campaign needs "
                        "schedule.send unless every stage is controlled_by_plan: true)",
                  code="CC306")
    schedule = _Schedule(spec, root)
    check_order = _SCHEDULE_ORDER.get(ctype) if isinstance(ctype, str) else None
    if check_order is not None:
        check_order(schedule, ctx)
    _window_timezone(schedule, ctx)
    _closes_at(spec, schedule, ctx)


def _window_timezone(schedule: _Schedule, ctx: Ctx) -> None:
    """`window_timezone` says whose zone the window is read in: it needs a window."""
    node = dig(schedule.node, "window_timezone")
    if node is not None and dig(schedule.node, "window") is None:
        ctx.error(node, "schedule.window_timezone needs schedule.window (the daily sending "
                        "window it places in each contact's zone)", code="CC312")


def _stage_names(stages: list, root: Node, ctx: Ctx, refs: list[Ref]) -> None:
    """Each stage's references, and no stage name twice."""
    seen: dict[str, Node] = {}
    for index, stage in enumerate(stages):
        node = dig(root, "stages", index)
        if not isinstance(stage, dict) or node is None:
            continue
        _audience_refs(stage.get("audience"), node.get("audience"), ctx, refs)
        _channel_ref(stage, node, ctx, refs)
        name = stage.get("name")
        name_node = node.get("name")
        if not isinstance(name, str) or name_node is None:
            continue
        if name in seen:
            first = seen[name]
            ctx.error(name_node, f"stages[{index + 1}].name: duplicate stage name "
                                 f"{name!r} (first at {first.line}:{first.col})", code="CC207")
        else:
            seen[name] = name_node


class _Schedule:
    """A campaign's schedule as read for ordering rules: its values, its nodes, and the instants
    read so far (each with its path and node, for the closing-date rule)."""

    def __init__(self, spec: dict, root: Node) -> None:
        # The time zone only when it is valid (an invalid one has its own error).
        in_spec = root.get("timezone") is None or "timezone" in spec
        self.tz: str | None = spec.get("timezone", "UTC") if in_spec else None
        sched = spec.get("schedule")
        self.values: dict = sched if isinstance(sched, dict) else {}
        self.node = root.get("schedule")
        self.moments: list[tuple[str, datetime, Node]] = []

    def value(self, *keys: str) -> Any:
        return _get(self.values, *keys)

    def at(self, *keys: str) -> Node:
        """The node of a value already read as an instant (so it exists)."""
        node = dig(self.node, *keys)
        assert node is not None
        return node

    def moment(self, *keys: str) -> datetime | None:
        value = _instant(self.value(*keys), self.tz)
        node = dig(self.node, *keys)
        if value is not None and node is not None:
            self.moments.append(("schedule." + ".".join(keys), value, node))
        return value


def _one_off_order(schedule: _Schedule, ctx: Ctx) -> None:
    queue_at, send_at = schedule.moment("queue", "at"), schedule.moment("send", "at")
    before = dig(schedule.node, "queue", "before_send")
    send_ok = dig(schedule.node, "send") is None or "send" in schedule.values
    if before is not None and send_ok and not isinstance(schedule.value("send", "at"), str):
        ctx.error(before, "schedule.queue.before_send needs schedule.send: {at: DATETIME} "
                          "(the build time is counted back from the send time)", code="CC307")
    if queue_at and send_at and send_at < queue_at:
        ctx.error(schedule.at("send", "at"),
                  f"schedule.send.at ({schedule.value('send', 'at')}) is before schedule.queue.at "
                  f"({schedule.value('queue', 'at')}): messages cannot be sent before they are "
                  "built", code="CC308")


def _date_triggered_order(schedule: _Schedule, ctx: Ctx) -> None:
    start, send_start = schedule.moment("start", "at"), schedule.moment("send_start", "at")
    until = schedule.moment("until")
    if start and send_start and send_start < start:
        ctx.error(schedule.at("send_start", "at"),
                  "schedule.send_start.at is before schedule.start.at: sending cannot start "
                  "before building", code="CC308")
    if start and until and until <= start:
        ctx.error(schedule.at("until"),
                  "schedule.until is not after schedule.start.at: nothing would ever run",
                  code="CC309")


def _event_triggered_order(schedule: _Schedule, ctx: Ctx) -> None:
    queue_start = schedule.moment("queue_start", "at")
    send_start = schedule.moment("send_start", "at")
    if queue_start and send_start and send_start < queue_start:
        ctx.error(schedule.at("send_start", "at"),
                  "schedule.send_start.at is before schedule.queue_start.at: sending cannot "
                  "start before building", code="CC308")
    catchup_node = dig(schedule.node, "catchup")
    if catchup_node is not None and schedule.value("queue_every") in (None, "on_event"):
        ctx.error(catchup_node, "schedule.catchup applies only to a cron queue_every: with "
                                "on_event (the default) every waiting event is built at the "
                                "next tick, whatever the downtime", code="CC111")
    dst_node = dig(schedule.node, "dst")
    if dst_node is not None and schedule.value("queue_every") in (None, "on_event"):
        ctx.error(dst_node, "schedule.dst applies only to a cron queue_every: with on_event "
                            "(the default) builds follow events, not a clock", code="CC111")


_SCHEDULE_ORDER = {"one-off": _one_off_order, "date-triggered": _date_triggered_order,
                   "event-triggered": _event_triggered_order}


def _closes_at(spec: dict, schedule: _Schedule, ctx: Ctx) -> None:
    """Nothing of the schedule may fall after (or at) the campaign's closing instant."""
    closes = _instant(spec.get("closes_at"), schedule.tz)
    if closes is None:
        return
    for what, when, node in schedule.moments:
        # Nothing runs at the closing instant either; `until` may end exactly there.
        if when > closes or (when == closes and what != "schedule.until"):
            where = "after" if when > closes else "at"
            ctx.error(node, f"{what} ({schedule.value(*what.split('.')[1:])}) is {where} "
                            f"closes_at ({spec['closes_at']}): nothing runs from the "
                            "closing date on", code="CC310")


def _plan_only(root: Node) -> bool:
    """Every stage is controlled_by_plan: true (read from the nodes: the rule is structural)."""
    stages = root.get("stages")
    if stages is None or stages.kind != "seq" or not stages.items:
        return False
    for stage in stages.items:
        flag = stage.get("controlled_by_plan")
        if flag is None or flag.kind != "scalar" or flag.value is not True or flag.quoted:
            return False
    return True


def _plan(spec: dict, root: Node, ctx: Ctx, refs: list[Ref]) -> None:
    stages = spec.get("stages")
    if not isinstance(stages, list):
        return
    seen: dict[tuple[str, str], Node] = {}
    for index, entry in enumerate(stages):
        node = dig(root, "stages", index)
        if not isinstance(entry, dict) or node is None:
            continue
        campaign, stage = entry.get("campaign"), entry.get("stage")
        if not (isinstance(campaign, str) and isinstance(stage, str)):
            continue
        key = (campaign, stage)
        if key in seen:
            first = seen[key]
            ctx.error(node, f"stages[{index + 1}]: stage {stage!r} of campaign {campaign!r} is "
                            f"listed twice (first at {first.line}:{first.col})", code="CC208")
            continue
        seen[key] = node
        campaign_node = node.get("campaign")
        if campaign_node is not None:
            refs.append(Ref("stage", campaign, campaign_node, ctx, stage, node.get("stage")))


def _scenario(spec: dict, root: Node, ctx: Ctx, refs: list[Ref]) -> None:
    launch = spec.get("launch")
    if isinstance(launch, dict):
        _audience_refs(launch.get("audience"), dig(root, "launch", "audience"), ctx, refs)
    steps = spec.get("steps")
    steps_node = root.get("steps")
    if not isinstance(steps, list) or steps_node is None:
        return
    ids, ids_complete = _step_ids(steps, steps_node, ctx, refs)
    edges, edges_complete = _step_edges(steps, steps_node, ids, ctx)
    if not (ids_complete and edges_complete) or len(edges) != len(steps):
        return
    reached = _reachable(edges)
    for index in range(len(steps)):
        if index not in reached:
            at = dig(steps_node, index, "id") or dig(steps_node, index) or steps_node
            ctx.error(at,
                      f"steps[{index + 1}]: step {steps[index]['id']!r} is unreachable (no step "
                      "leads to it; name it in next, then or else, or remove it)", code="CC213")
    _loops_without_wait(steps, steps_node, edges, reached, ctx)


def _step_ids(steps: list, steps_node: Node, ctx: Ctx,
              refs: list[Ref]) -> tuple[dict[str, int], bool]:
    """Each step's channel reference and id: {id: index}, and whether every step has a usable
    id (the graph rules need all of them)."""
    ids: dict[str, int] = {}
    complete = True
    for index, step in enumerate(steps):
        node = dig(steps_node, index)
        if not isinstance(step, dict) or node is None:
            complete = False
            continue
        _channel_ref(step.get("send"), node.get("send"), ctx, refs)
        sid = step.get("id")
        id_node = node.get("id")
        if not isinstance(sid, str) or id_node is None:
            complete = False
            continue
        if sid == "end":
            ctx.error(id_node, f"steps[{index + 1}].id: 'end' is reserved (it exits the scenario); "
                               "choose another id", code="CC209")
            complete = False
        elif sid in ids:
            first = dig(steps_node, ids[sid], "id")
            where = f" (first at {first.line}:{first.col})" if first is not None else ""
            ctx.error(id_node, f"steps[{index + 1}].id: duplicate step id {sid!r}{where}",
                      code="CC210")
            complete = False
        else:
            ids[sid] = index
    return ids, complete


def _step_edges(steps: list, steps_node: Node, ids: dict[str, int],
                ctx: Ctx) -> tuple[dict[int, list[int | None]], bool]:
    """Where each step goes: {index: [target index, or None for end]}, and whether every jump
    could be read."""
    edges: dict[int, list[int | None]] = {}
    complete = True
    for index, step in enumerate(steps):
        node = dig(steps_node, index)
        if not isinstance(step, dict) or node is None:
            continue
        actions = [a for a in ("send", "wait", "if") if node.get(a) is not None]
        if len(actions) != 1:
            complete = False
            continue
        jumps = ("then", "else") if actions[0] == "if" else ("next",)
        _misplaced_jumps(index, node, actions[0], jumps, ctx)
        following = index + 1 if index + 1 < len(steps) else None
        out: list[int | None] = []
        for key in jumps:
            target = step.get(key)
            target_node = node.get(key)
            if target_node is None:
                out.append(following)
            elif not isinstance(target, str):
                complete = False
            elif target == "end":
                out.append(None)
            elif target in ids:
                out.append(ids[target])
            else:
                ctx.error(target_node, f"steps[{index + 1}].{key}: unknown step {target!r}"
                                       f"{did_you_mean(target, ids)} (use a step id or end)",
                          code="CC211")
                complete = False
        edges[index] = out
    return edges, complete


def _misplaced_jumps(index: int, node: Node, action: str, jumps: tuple[str, ...],
                     ctx: Ctx) -> None:
    for key in ("next", "then", "else"):
        key_node = node.key_node(key)
        if key_node is not None and key not in jumps:
            use = "then and else" if action == "if" else "next"
            ctx.error(key_node, f"steps[{index + 1}]: {key} does not apply to a {action} "
                                f"step; use {use}", code="CC212")


def _reachable(edges: dict[int, list[int | None]]) -> set[int]:
    """The steps reached from the first one."""
    reached = {0}
    todo = [0]
    while todo:
        for target in edges[todo.pop()]:
            if target is not None and target not in reached:
                reached.add(target)
                todo.append(target)
    return reached


def _loops_without_wait(steps: list, steps_node: Node, edges: dict, reached: set,
                        ctx: Ctx) -> None:
    """A cycle of send/if steps with no wait would run forever inside one tick; a wait of zero
    (`0s`) waits for nothing, so it sends once per tick forever: a loop needs a positive wait."""
    busy = {i for i in reached if dig(steps_node, i, "wait") is None
            or ("wait" in steps[i] and not _positive_wait(steps[i]["wait"]))}
    state: dict[int, int] = {}

    def visit(i: int, trail: list[int]) -> list[int] | None:
        state[i] = 1
        trail.append(i)
        for target in edges[i]:
            if target is None or target not in busy:
                continue
            if state.get(target) == 1:
                return [*trail[trail.index(target):], target]
            if target not in state:
                found = visit(target, trail)
                if found:
                    return found
        trail.pop()
        state[i] = 2
        return None

    for start in sorted(busy):
        if start not in state:
            cycle = visit(start, [])
            if cycle:
                names = " -> ".join(steps[i]["id"] for i in cycle)
                node = dig(steps_node, cycle[0], "id") or steps_node
                ctx.error(node, f"steps loop without a wait ({names}); add a wait step of a "
                                "positive duration to the loop or jump to end", code="CC311")
                return


def _positive_wait(wait: Any) -> bool:
    from campctl.timeutil import parse_duration

    try:
        return isinstance(wait, str) and parse_duration(wait).total_seconds() > 0
    except ValueError:
        return False


def resolve(refs: list[Ref], specs: dict[tuple[str, str], Any]) -> None:
    """Report references to objects that exist neither in the files nor in the state file."""
    names: dict[str, set[str]] = {}
    for kind, name in specs:
        names.setdefault(kind, set()).add(name)
    names.setdefault("Channel", set()).add("outbox")
    for ref in refs:
        if ref.kind in ("Segment", "Channel"):
            if ref.name not in names.get(ref.kind, set()):
                ref.ctx.error(ref.node, f"unknown {ref.kind.lower()} {ref.name!r}"
                                        f"{did_you_mean(ref.name, names.get(ref.kind, ()))}: "
                                        f"define it in the given files or apply it first",
                              code="CC203")
            continue
        campaign = specs.get(("Campaign", ref.name))
        if ("Campaign", ref.name) not in specs:
            ref.ctx.error(ref.node, f"unknown campaign {ref.name!r}"
                                    f"{did_you_mean(ref.name, names.get('Campaign', ()))}: "
                                    "define it in the given files or apply it first", code="CC204")
            continue
        if not isinstance(campaign, dict):
            continue  # the campaign itself is invalid; its own errors say why
        stages = campaign.get("stages")
        if stages is None:
            stages = [{"name": "main"}]
        if not isinstance(stages, list):
            continue
        by_name = {s.get("name"): s for s in stages if isinstance(s, dict)}
        at = ref.stage_node or ref.node
        if ref.stage not in by_name:
            listed = ", ".join(str(n) for n in by_name if n) or "none"
            ref.ctx.error(at, f"campaign {ref.name!r} has no stage {ref.stage!r}"
                              f"{did_you_mean(ref.stage or '', [n for n in by_name if n])} "
                              f"(stages: {listed})", code="CC205")
        elif by_name[ref.stage].get("controlled_by_plan") is not True:
            ref.ctx.error(at, f"stage {ref.stage!r} of campaign {ref.name!r} is not "
                              "controlled_by_plan: true; set it on the stage so that it runs only "
                              "in plan instances", code="CC206")
