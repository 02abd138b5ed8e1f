"""The console's flow graph (common/graph.py) over every fixture flow, and state colouring from recorded histories."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.fdl import parse_definition
from common.fdl.model import FlowDef
from common.graph import END, START, Graph, build_graph
from common.interpreter.model import HistoryEvent
from common.overlay import StateStatus, read_history, timeline

ROOT = Path(__file__).resolve().parents[1]
FLOWS = sorted((ROOT / "fixtures" / "flows").glob("*.yaml"))
GOLDENS = sorted((ROOT / "golden").glob("*.json"))


def _flow(path: Path) -> FlowDef:
    return parse_definition(yaml.safe_load(path.read_text(encoding="utf-8"))["definition"])


def _edges(graph: Graph) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.kind) for e in graph.edges}


def test_every_syntax_is_among_the_fixtures() -> None:
    syntaxes = {_flow(p).syntax for p in FLOWS}
    assert syntaxes == {"old", "new"}


@pytest.mark.parametrize("path", FLOWS, ids=[p.stem for p in FLOWS])
def test_a_node_per_state_and_an_edge_per_next_choice_default_and_catch(path: Path) -> None:
    flow = _flow(path)
    graph = build_graph(flow)
    edges = _edges(graph)
    ids = {n.id for n in graph.nodes}
    assert len(ids) == len(graph.nodes), "node ids are unique"
    assert {e.source for e in graph.edges} | {e.target for e in graph.edges} <= ids, "every edge joins two nodes"
    groups = {g.id for g in graph.groups}
    assert all(n.group is None or n.group in groups for n in graph.nodes)
    for key, scope in flow.scopes.items():
        for name, state in scope.states.items():
            node_id = graph.by_state[(key, name)]
            node = graph.node(node_id)
            assert (node.label, node.kind) == (name, state.type)
            if state.next is not None and state.type != "choice":  # a choice's next is where branches without goto go
                assert (node.exit, graph.by_state[(key, state.next)], "next") in edges
            for rule in state.choices:
                if rule.scope is not None:  # old syntax: the branch's own steps first
                    body = flow.scope(rule.scope)
                    assert body.start is None or (node_id, graph.by_state[(rule.scope, body.start)], "choice") in edges
                elif rule.goto is not None:
                    assert (node_id, graph.by_state[(key, rule.goto)], "choice") in edges
            if state.default is not None and state.default.goto is not None and state.default.scope is None:
                assert (node_id, graph.by_state[(key, state.default.goto)], "default") in edges
            for catch in state.catch:
                assert (node_id, graph.by_state[(key, catch.goto)], "catch") in edges
            if state.fan is not None:  # each branch / the iteration body is a group entered from the fork
                for branch in state.fan.scopes:
                    body = flow.scope(branch)
                    if body.start is not None:
                        assert (node_id, graph.by_state[(branch, body.start)], "branch") in edges
                        assert graph.node(graph.by_state[(branch, body.start)]).group is not None
            if state.type in ("succeed", "fail"):
                assert not any(e.source == node_id for e in graph.edges), "Succeed/Fail end the flow"
    # Start leads to the first state; End is drawn when some path reaches it.
    assert (END in ids) == any(e.target == END for e in graph.edges)
    assert (START, graph.by_state[(flow.root.key, flow.root.start)] if flow.root.start else END, "start") in edges
    json.dumps(graph.to_json())  # what the page embeds


def test_catch_edges_are_their_own_kind() -> None:
    graph = build_graph(_flow(ROOT / "fixtures" / "flows" / "new_task_catch.yaml"))
    catches = [e for e in graph.edges if e.kind == "catch"]
    assert catches and all(e.label for e in catches)


def _events(golden: dict[str, Any], upto: int | None = None) -> list[HistoryEvent]:
    events = [HistoryEvent.from_json(h) for step in golden["steps"] for h in step["history"]]
    return events if upto is None else [e for e in events if e.id <= upto]


def _colours(name: str, upto: int | None = None) -> dict[str, StateStatus]:
    golden = json.loads((ROOT / "golden" / f"{name}.json").read_text(encoding="utf-8"))
    flow = parse_definition(golden["definition"])
    graph = build_graph(flow)
    overlay = read_history(flow, graph, _events(golden, upto))
    return {graph.node(n).label: view.status for n, view in overlay.states.items()}


@pytest.mark.parametrize(
    ("golden", "upto", "expected"),
    [
        ("new_task_catch", None, {"Pay": StateStatus.CAUGHT, "Refund": StateStatus.SUCCEEDED}),
        ("old_task_catch_error_mappings", None, {"pay": StateStatus.CAUGHT, "refund": StateStatus.SUCCEEDED}),
        ("old_task_retry", None, {"flaky": StateStatus.RETRIED}),
        ("new_stop", None, {"Approve": StateStatus.STOPPED}),
        ("old_flow_timeout", None, {"too_long": StateStatus.STOPPED}),
        ("old_task_callback", None, {"approve": StateStatus.SUCCEEDED}),
        ("old_task_callback", 6, {"approve": StateStatus.WAITING}),  # TaskSubmitted, no report yet
        ("old_task_callback", 3, {"approve": StateStatus.RUNNING}),
        ("new_task_catch", 6, {"Pay": StateStatus.RETRIED}),  # failed once, waiting for its retry
        ("new_parallel_retry", None, {"Both": StateStatus.SUCCEEDED, "Steady": StateStatus.SUCCEEDED, "Flaky": StateStatus.SUCCEEDED}),
        ("new_parallel_retry", 14, {"Both": StateStatus.RUNNING, "Steady": StateStatus.RUNNING, "Flaky": StateStatus.FAILED}),
        ("old_choice_steps", None, {"check": StateStatus.SUCCEEDED, "big": StateStatus.SUCCEEDED, "done": StateStatus.SUCCEEDED}),
        ("new_map_concurrency", None, {"Each": StateStatus.SUCCEEDED, "Fetch": StateStatus.SUCCEEDED}),
    ],
)
def test_states_are_coloured_from_recorded_histories(golden: str, upto: int | None, expected: dict[str, StateStatus]) -> None:
    assert _colours(golden, upto) == expected


@pytest.mark.parametrize("path", GOLDENS, ids=[p.stem for p in GOLDENS])
def test_every_recorded_event_finds_its_state_and_the_timeline_covers_every_visit(path: Path) -> None:
    golden = json.loads(path.read_text(encoding="utf-8"))
    flow = parse_definition(golden["definition"])
    graph = build_graph(flow)
    events = _events(golden)
    overlay = read_history(flow, graph, events)
    stepped = {e.id for e in events if e.step and e.type == "StepEntered"}
    assert {v.id for v in overlay.visits} == stepped
    assert all(v.node for v in overlay.visits), "each visit is drawn on a node of its own scope"
    assert all(graph.node(v.node).label == v.step for v in overlay.visits)
    assert overlay.end_type == next(e.type for e in reversed(events) if e.type.startswith("Execution"))
    assert all(v.ended is not None for v in overlay.visits), "an ended execution leaves no state running"
    bars = timeline(overlay)
    assert [b for b in bars if b.kind == "state"] and len([b for b in bars if b.kind == "state"]) == len(overlay.visits)


def test_nested_states_with_one_name_are_told_apart_by_scope() -> None:
    golden = json.loads((ROOT / "golden" / "new_nested_scopes.json").read_text(encoding="utf-8"))
    flow = parse_definition(golden["definition"])
    graph = build_graph(flow)
    overlay = read_history(flow, graph, _events(golden))
    same_nodes = {v.node for v in overlay.visits if v.step == "Same"}
    assert len(same_nodes) == 3  # three states named Same in three scopes, each coloured on its own


def test_the_waiting_task_names_its_activity() -> None:
    golden = json.loads((ROOT / "golden" / "old_task_callback.json").read_text(encoding="utf-8"))
    flow = parse_definition(golden["definition"])
    graph = build_graph(flow)
    overlay = read_history(flow, graph, _events(golden, 6))
    view = next(iter(overlay.states.values()))
    assert view.waiting_task is not None and view.waiting_task.task_id == "2"  # the StepEntered id: token-2 in the golden
    assert any(b.kind == "callback" and b.end is None for b in timeline(overlay))
