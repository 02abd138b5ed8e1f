"""Render the OpenFnF Helm chart without Helm: the Go-template subset the chart uses, in Python.

Usage: python deploy/helm/render.py deploy/helm/openfnf [-f values.yaml ...] [--name R] [--namespace N]

Supported (and nothing else, so a template using more fails loudly instead of rendering wrong):
actions `{{ pipeline }}` with the trim markers `{{-` / `-}}` and `{{/* comments */}}`;
`if / else if / else / end`, `with / else / end`, `range [$i, $v :=] pipeline / else / end`,
`define "name"` (in templates/_*.tpl) and `include "name" value`; variables `$x := pipeline`, `$`;
fields `.Values.a.b`, `.Release.Name|Namespace|Service`, `.Chart.Name|Version|AppVersion`;
literals (strings, numbers, true/false/nil), parentheses, pipes `|`; functions `default`,
`required`, `quote`, `toYaml`, `indent`, `nindent`, `b64enc`, `trunc`, `trimSuffix`, `printf`
(%s %d %v), `eq`, `ne`, `and`, `or`, `not`, `empty`, `toString`, `list`, `dict`, `hasKey`,
`contains`, `add`, `sha256sum`.
Values are merged like Helm's (maps deep-merged, later files win). Output is what
`helm template` prints: each non-empty template as `---` + `# Source: ...` + its text.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>:=|\||\(|\)|,|=)
    )""",
    re.VERBOSE,
)


class TemplateError(Exception):
    """A template outside the supported subset, or one that fails to evaluate."""


# ---------------------------------------------------------------- parsing

@dataclass
class Text:
    text: str


@dataclass
class Action:
    pipe: list[Any]  # tokens of the pipeline
    where: str


@dataclass
class Block:
    kind: str  # if | with | range | define
    branches: list[tuple[list[Any], list[Any]]] = field(default_factory=list)  # (pipeline tokens, body)
    otherwise: list[Any] | None = None
    where: str = ""


def _tokens(src: str, where: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    src = src.strip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"{where}: cannot read {src[pos:pos + 30]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(src) and src[pos].isspace():
            pos += 1
    return out


def _lex(src: str, name: str) -> list[Any]:
    """Text and action segments, trim markers applied."""
    items: list[Any] = []
    pos = 0
    for m in _ACTION.finditer(src):
        text = src[pos : m.start()]
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        items.append(Text(text))
        line = src.count("\n", 0, m.start()) + 1
        body = m.group(2)
        items.append(("action", body, f"{name}:{line}", bool(m.group(3))))
        pos = m.end()
    items.append(Text(src[pos:]))
    # right trim markers eat the whitespace that follows
    for i, item in enumerate(items):
        if isinstance(item, tuple) and item[3] and i + 1 < len(items):
            nxt = items[i + 1]
            assert isinstance(nxt, Text)
            nxt.text = nxt.text.lstrip(" \t\r\n")
    return items


def parse(src: str, name: str) -> tuple[list[Any], dict[str, list[Any]]]:
    """The node list of a template and the `define`d templates it holds."""
    defines: dict[str, list[Any]] = {}
    root: list[Any] = []
    stack: list[tuple[Block, list[Any]]] = []  # open blocks and the body being filled
    body = root
    for item in _lex(src, name):
        if isinstance(item, Text):
            if item.text:
                body.append(item)
            continue
        _, raw, where, _ = item
        raw = raw.strip()
        if raw.startswith("/*"):
            if not raw.endswith("*/"):
                raise TemplateError(f"{where}: unterminated comment")
            continue
        toks = _tokens(raw, where)
        head = toks[0][1] if toks and toks[0][0] == "ident" else ""
        if head in ("if", "with", "range"):
            block = Block(head, where=where)
            block.branches.append((toks[1:], []))
            body.append(block)
            stack.append((block, body))
            body = block.branches[-1][1]
        elif head == "define":
            if len(toks) != 2 or toks[1][0] != "str":
                raise TemplateError(f"{where}: define needs one quoted name")
            block = Block("define", where=where)
            block.branches.append(([toks[1]], []))
            stack.append((block, body))
            body = block.branches[-1][1]
        elif head == "else":
            if not stack:
                raise TemplateError(f"{where}: else without a block")
            block = stack[-1][0]
            if block.otherwise is not None:
                raise TemplateError(f"{where}: a second else")
            if len(toks) > 1 and toks[1] == ("ident", "if"):
                if block.kind != "if":
                    raise TemplateError(f"{where}: else if inside {block.kind}")
                block.branches.append((toks[2:], []))
                body = block.branches[-1][1]
            else:
                block.otherwise = []
                body = block.otherwise
        elif head == "end":
            if not stack:
                raise TemplateError(f"{where}: end without a block")
            block, body = stack.pop()
            if block.kind == "define":
                defines[_literal(block.branches[0][0][0])] = block.branches[0][1]
        elif head in ("template", "block", "break", "continue", "tpl"):
            raise TemplateError(f"{where}: `{head}` is outside the supported subset")
        else:
            body.append(Action(toks, where))
    if stack:
        raise TemplateError(f"{name}: {stack[-1][0].kind} opened at {stack[-1][0].where} is never closed")
    return root, defines


def _literal(tok: tuple[str, str]) -> Any:
    kind, text = tok
    if kind == "str":
        return json.loads(text)  # Go's escapes in a "..." string are JSON's for what a chart uses
    if kind == "raw":
        return text[1:-1]
    if kind == "num":
        return float(text) if "." in text else int(text)
    raise TemplateError(f"not a literal: {text}")


# ---------------------------------------------------------------- evaluation

def truthy(value: Any) -> bool:
    """Go template truth: false, 0, nil and empty strings/lists/maps are false."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str | list | dict | tuple):
        return len(value) > 0
    return True


def to_yaml(value: Any) -> str:
    """Helm's toYaml: block style, sorted keys, no trailing newline."""
    if value is None:
        return "null"
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True, allow_unicode=True).rstrip("\n")


def _indent(n: Any, text: Any) -> str:
    pad = " " * int(n)
    return "\n".join(pad + line for line in str(text).split("\n"))


def _printf(fmt: str, *args: Any) -> str:
    out, i = [], 0
    parts = re.split(r"(%[sdv%])", fmt)
    for part in parts:
        if part == "%%":
            out.append("%")
        elif part in ("%s", "%v"):
            out.append(_show(args[i]))
            i += 1
        elif part == "%d":
            out.append(str(int(args[i])))
            i += 1
        else:
            out.append(part)
    return "".join(out)


def _required(msg: str, value: Any) -> Any:
    if value is None or value == "":
        raise TemplateError(f"required value missing: {msg}")
    return value


def _show(value: Any) -> str:
    """How an action prints a value (Helm turns Go's <no value> into "")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        raise TemplateError("printing a map or list directly; pipe it through toYaml")
    return str(value)


def _default(default: Any, *given: Any) -> Any:
    return given[0] if given and truthy(given[0]) else default


def _and(*args: Any) -> Any:
    for a in args:
        if not truthy(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if truthy(a):
            return a
    return args[-1]


FUNCS: dict[str, Any] = {
    "default": _default,
    "required": _required,
    "quote": lambda *a: " ".join('"' + _show(x).replace("\\", "\\\\").replace('"', '\\"') + '"' for x in a),
    "toYaml": to_yaml,
    "indent": _indent,
    "nindent": lambda n, text: "\n" + _indent(n, text),
    "b64enc": lambda s: base64.b64encode(_show(s).encode()).decode(),
    "trunc": lambda n, s: _show(s)[: int(n)] if int(n) >= 0 else _show(s)[int(n) :],
    "trimSuffix": lambda suffix, s: _show(s)[: -len(suffix)] if suffix and _show(s).endswith(suffix) else _show(s),
    "printf": _printf,
    "eq": lambda a, *bs: any(a == b for b in bs),
    "ne": lambda a, b: a != b,
    "and": _and,
    "or": _or,
    "not": lambda a: not truthy(a),
    "empty": lambda a: not truthy(a),
    "toString": _show,
    "list": lambda *a: list(a),
    "hasKey": lambda d, k: isinstance(d, dict) and k in d,
    "contains": lambda sub, s: _show(sub) in _show(s),
    "sha256sum": lambda s: hashlib.sha256(_show(s).encode()).hexdigest(),
    "add": lambda *n: sum(int(x) for x in n),  # sprig's add works on int64
    "dict": lambda *kv: {str(kv[i]): kv[i + 1] for i in range(0, len(kv) - 1, 2)},
}


class Renderer:
    """Evaluates parsed templates against a root context (.Values, .Release, .Chart)."""

    def __init__(self, defines: dict[str, list[Any]]) -> None:
        self.defines = defines

    def render(self, nodes: list[Any], dot: Any, root: Any) -> str:
        return self._nodes(nodes, dot, {"$": root})

    def _nodes(self, nodes: list[Any], dot: Any, scope: dict[str, Any]) -> str:
        out: list[str] = []
        scope = dict(scope)  # variables declared in a block end with it
        for node in nodes:
            if isinstance(node, Text):
                out.append(node.text)
            elif isinstance(node, Action):
                toks = node.pipe
                if len(toks) > 2 and toks[0][0] == "var" and toks[1] == ("op", ":="):
                    scope[toks[0][1]] = self._pipeline(toks[2:], dot, scope, node.where)
                else:
                    out.append(_show(self._pipeline(toks, dot, scope, node.where)))
            else:
                out.append(self._block(node, dot, scope))
        return "".join(out)

    def _block(self, block: Block, dot: Any, scope: dict[str, Any]) -> str:
        if block.kind == "if":
            for cond, body in block.branches:
                if truthy(self._pipeline(cond, dot, scope, block.where)):
                    return self._nodes(body, dot, scope)
            return self._nodes(block.otherwise or [], dot, scope)
        if block.kind == "with":
            cond, body = block.branches[0]
            value = self._pipeline(cond, dot, scope, block.where)
            if truthy(value):
                return self._nodes(body, value, scope)
            return self._nodes(block.otherwise or [], dot, scope)
        if block.kind == "range":
            toks, body = block.branches[0]
            names: list[str] = []
            if ("op", ":=") in toks:
                at = toks.index(("op", ":="))
                names = [t[1] for t in toks[:at] if t[0] == "var"]
                toks = toks[at + 1 :]
            value = self._pipeline(toks, dot, scope, block.where)
            if not truthy(value):
                return self._nodes(block.otherwise or [], dot, scope)
            items = sorted(value.items()) if isinstance(value, dict) else list(enumerate(value))
            out = []
            for key, item in items:
                inner = dict(scope)
                if len(names) == 1:
                    inner[names[0]] = item
                elif len(names) == 2:
                    inner[names[0]], inner[names[1]] = key, item
                out.append(self._nodes(body, item, inner))
            return "".join(out)
        raise TemplateError(f"{block.where}: unexpected {block.kind}")

    def _pipeline(self, toks: list[tuple[str, str]], dot: Any, scope: dict[str, Any], where: str) -> Any:
        commands: list[list[Any]] = [[]]
        depth = 0
        for tok in toks:
            if tok == ("op", "|") and depth == 0:
                commands.append([])
                continue
            if tok == ("op", "("):
                depth += 1
            elif tok == ("op", ")"):
                depth -= 1
            commands[-1].append(tok)
        value: Any = _NOTHING
        for cmd in commands:
            if not cmd:
                raise TemplateError(f"{where}: empty command in a pipeline")
            value = self._command(cmd, dot, scope, where, value)
        return value

    def _command(self, cmd: list[tuple[str, str]], dot: Any, scope: dict[str, Any], where: str, piped: Any) -> Any:
        operands = self._operands(cmd, dot, scope, where)
        head = cmd[0]
        if head[0] == "ident" and head[1] not in ("true", "false", "nil"):
            name = head[1]
            args = operands[1:] + ([] if piped is _NOTHING else [piped])
            if name == "include":
                if len(args) != 2:
                    raise TemplateError(f"{where}: include needs a name and a value")
                if args[0] not in self.defines:
                    raise TemplateError(f"{where}: no template {args[0]!r} is defined")
                return self._nodes(self.defines[args[0]], args[1], {"$": args[1]})  # as in Go: $ is the argument
            fn = FUNCS.get(name)
            if fn is None:
                raise TemplateError(f"{where}: function {name!r} is outside the supported subset")
            try:
                return fn(*args)
            except TemplateError as exc:
                raise TemplateError(f"{where}: {exc}") from None
            except (TypeError, ValueError, IndexError) as exc:
                raise TemplateError(f"{where}: {name}: {exc}") from None
        if len(operands) != 1 or piped is not _NOTHING:
            raise TemplateError(f"{where}: cannot call a non-function")
        return operands[0]

    def _operands(self, cmd: list[tuple[str, str]], dot: Any, scope: dict[str, Any], where: str) -> list[Any]:
        out: list[Any] = []
        i = 0
        while i < len(cmd):
            kind, text = cmd[i]
            if text == "(" and kind == "op":
                depth, j = 1, i + 1
                while depth:
                    if j >= len(cmd):
                        raise TemplateError(f"{where}: unbalanced parentheses")
                    if cmd[j] == ("op", "("):
                        depth += 1
                    elif cmd[j] == ("op", ")"):
                        depth -= 1
                    j += 1
                out.append(self._pipeline(cmd[i + 1 : j - 1], dot, scope, where))
                i = j
                continue
            if kind in ("str", "raw", "num"):
                out.append(_literal((kind, text)))
            elif kind == "ident":
                out.append({"true": True, "false": False, "nil": None}.get(text, text))
            elif kind == "field":
                out.append(_walk(dot, text, where))
            elif kind == "var":
                name, _, rest = text.partition(".")
                if name not in scope:
                    raise TemplateError(f"{where}: undefined variable {name}")
                out.append(_walk(scope[name], "." + rest if rest else ".", where))
            else:
                raise TemplateError(f"{where}: unexpected {text!r}")
            i += 1
        return out


_NOTHING = object()


def _walk(value: Any, path: str, where: str) -> Any:
    if path == ".":
        return value
    for part in path.strip(".").split("."):
        if value is None:
            raise TemplateError(f"{where}: nil pointer evaluating {path}")
        if not isinstance(value, dict):
            raise TemplateError(f"{where}: {path}: cannot index a {type(value).__name__}")
        value = value.get(part)
    return value


# ---------------------------------------------------------------- the chart

def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's values merge: maps deep-merged, anything else replaced; a null removes the key."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def render_chart(chart_dir: Path, values_files: list[Path] = (), name: str = "openfnf", namespace: str = "default", overrides: dict[str, Any] | None = None) -> str:  # type: ignore[assignment]
    """The chart rendered as `helm template NAME CHART -f ...` prints it."""
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text(encoding="utf-8"))
    values = yaml.safe_load((chart_dir / "values.yaml").read_text(encoding="utf-8")) or {}
    for path in values_files:
        values = merge(values, yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
    if overrides:
        values = merge(values, overrides)
    root = {
        "Values": values,
        "Release": {"Name": name, "Namespace": namespace, "Service": "Helm", "IsInstall": True, "Revision": 1},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart.get("appVersion", "")},
    }
    templates = sorted((chart_dir / "templates").glob("*"))
    defines: dict[str, list[Any]] = {}
    parsed: list[tuple[str, list[Any]]] = []
    for path in templates:
        nodes, found = parse(path.read_text(encoding="utf-8"), path.name)
        defines.update(found)
        if path.name.startswith("_") or path.suffix not in (".yaml", ".yml"):
            continue
        parsed.append((path.name, nodes))
    renderer = Renderer(defines)
    out = []
    for filename, nodes in parsed:
        text = renderer.render(nodes, root, root)
        if text.strip():
            out.append(f"---\n# Source: {chart['name']}/templates/{filename}\n{text.strip(chr(10))}\n")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    """Command line: print the rendered chart."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("chart", type=Path)
    ap.add_argument("-f", "--values", type=Path, action="append", default=[])
    ap.add_argument("--name", default="openfnf")
    ap.add_argument("--namespace", default="default")
    args = ap.parse_args(argv)
    try:
        sys.stdout.write(render_chart(args.chart, args.values, args.name, args.namespace))
    except TemplateError as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
