"""A flow drawn as a graph (pure): nodes for states, edges for Next, Choice branches, default and Catch.

Built from the parsed FDL, for both syntaxes, so what the console draws is what runs. Parallel
branches and Map/foreach bodies are groups nested in their state's group; a Parallel/Map state is
a fork node and a `join` node closes it (the state's Next leaves from the join). Old-syntax choice
branches with their own `steps` are groups too. Each scope's states that end it (no Next, not
Succeed/Fail) lead to the scope's exit: the root's End node, or the join of the enclosing state.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from common.fdl.model import FlowDef, ScopeDef, StateDef

START, END = "start", "end"  # ids of the root scope's Start and End nodes


@dataclass(frozen=True)
class Node:
    """One box: a state (kind = its type), the Start/End markers, or the join of a Parallel/Map."""

    id: str
    label: str
    kind: str  # task, pass, choice, parallel, map, foreach, wait, succeed, fail, start, end, join
    scope: str = ""  # the FDL scope key the state stands in ('' for markers)
    group: str | None = None  # id of the innermost group it is drawn in
    exit: str = ""  # the node its Next leaves from (its join for Parallel/Map; itself otherwise)


@dataclass(frozen=True)
class Edge:
    """An arrow; `kind` says which FDL field made it (next, choice, default, catch) or the structure (branch, exit, end)."""

    source: str
    target: str
    kind: str
    label: str = ""


@dataclass(frozen=True)
class Group:
    """A box around a Parallel branch, a Map/foreach body, or an old-syntax choice branch."""

    id: str
    label: str
    parent: str | None


@dataclass
class Graph:
    """The whole drawing, plus where each state's node is."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    by_state: dict[tuple[str, str], str] = field(default_factory=dict)  # (scope key, state name) -> node id
    scope_parent: dict[str, str | None] = field(default_factory=dict)  # scope key -> enclosing scope key

    def node(self, node_id: str) -> Node:
        """The node with this id."""
        return next(n for n in self.nodes if n.id == node_id)

    def to_json(self) -> dict[str, object]:
        """What the browser lays out (console/static/graph.js)."""
        return {
            "nodes": [{"id": n.id, "label": n.label, "kind": n.kind, "group": n.group} for n in self.nodes],
            "edges": [{"source": e.source, "target": e.target, "kind": e.kind, "label": e.label} for e in self.edges],
            "groups": [{"id": g.id, "label": g.label, "parent": g.parent} for g in self.groups],
        }


END_KINDS = frozenset({"succeed", "fail"})


class _Builder:
    def __init__(self, flow: FlowDef) -> None:
        self.flow = flow
        self.graph = Graph()
        self._ids = 0

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}"

    def build(self) -> Graph:
        g = self.graph
        g.nodes.append(Node(START, "Start", "start", exit=START))
        g.nodes.append(Node(END, "End", "end", exit=END))
        root = self.flow.root
        g.scope_parent[root.key] = None
        ids = self._scope(root, None, END)
        g.edges.insert(0, Edge(START, ids[root.start] if root.start else END, "start"))
        if not any(e.target == END for e in g.edges):  # every path ends in Succeed/Fail (or loops): no End to draw
            g.nodes.remove(g.node(END))
        return g

    def _scope(self, scope: ScopeDef, group: str | None, exit_to: str) -> dict[str, str]:
        """Add a scope's states (and everything nested); returns state name -> node id."""
        g = self.graph
        ids: dict[str, str] = {}
        joins: dict[str, str] = {}
        for name, state in scope.states.items():
            node_id = self._id("n")
            ids[name] = node_id
            if state.fan is not None:
                joins[name] = self._id("j")
            g.by_state[(scope.key, name)] = node_id
            g.nodes.append(Node(node_id, name, state.type, scope.key, group, joins.get(name, node_id)))
        for name, state in scope.states.items():
            src = joins.get(name, ids[name])
            after = ids[state.next] if state.next is not None and state.next in ids else exit_to
            if state.fan is not None:
                self._fan(scope, state, ids[name], joins[name], group)
            if state.type == "choice":
                self._choice(scope, state, ids, group, after)
            elif state.type not in END_KINDS:
                kind = "next" if state.next is not None else ("end" if after == END else "exit")
                g.edges.append(Edge(src, after, kind))
            for rule in state.catch:
                if rule.goto in ids:
                    g.edges.append(Edge(ids[name], ids[rule.goto], "catch", ", ".join(rule.errors)))
        return ids

    def _fan(self, scope: ScopeDef, state: StateDef, fork: str, join: str, group: str | None) -> None:
        g = self.graph
        assert state.fan is not None
        g.nodes.append(Node(join, "", "join", scope.key, group, join))
        outer = self._id("g")
        g.groups.append(Group(outer, state.name, group))
        many = len(state.fan.scopes) > 1
        for i, key in enumerate(state.fan.scopes):
            inner = self._id("g") if many else outer
            if many:
                g.groups.append(Group(inner, f"branch {i}", outer))
            else:
                g.groups[-1] = Group(outer, f"{state.name}: each item", group)
            body = self.flow.scope(key)
            g.scope_parent[key] = scope.key
            ids = self._scope(body, inner, join)
            g.edges.append(Edge(fork, ids[body.start] if body.start else join, "branch"))

    def _choice(self, scope: ScopeDef, state: StateDef, ids: dict[str, str], group: str | None, after: str) -> None:
        g = self.graph
        src = ids[state.name]
        rules = [(rule, "choice") for rule in state.choices] + ([(state.default, "default")] if state.default else [])
        for rule, kind in rules:
            label = "default" if kind == "default" else (rule.condition or "")
            target = ids[rule.goto] if rule.goto is not None and rule.goto in ids else after
            if rule.scope is not None:  # old syntax: the branch's own steps run first, then its goto
                body = self.flow.scope(rule.scope)
                g.scope_parent[rule.scope] = scope.key
                inner = self._id("g")
                g.groups.append(Group(inner, f"{state.name}: {label}"[:60], group))
                body_ids = self._scope(body, inner, target)
                g.edges.append(Edge(src, body_ids[body.start] if body.start else target, kind, label))
            else:
                g.edges.append(Edge(src, target, kind, label))


def build_graph(flow: FlowDef) -> Graph:
    """The graph of a parsed flow definition."""
    return _Builder(flow).build()
