"""Expressions: `.$` values, `ItemsPath`, `Seconds.$`, Choice `Condition`s (new) and choice conditions (old).

One grammar for both syntaxes, compiled once into Python closures over an Env:

    expr    := or
    or      := and ('||' and)*            and := eq ('&&' eq)*
    eq      := cmp (('==' | '!=') cmp)*   cmp := sum (('<' | '<=' | '>' | '>=') sum)*
    sum     := prod (('+' | '-') prod)*   prod := unary (('*' | '/' | '%') unary)*
    unary   := ('!' | '-') unary | postfix
    postfix := primary ('.' name | '[' expr ']')*
    primary := number | string ("..." or '...') | true | false | null | path
             | name '(' args ')' | '(' expr ')' | '[' items ']' | '{' key ':' expr, ... '}'

Paths are `$Input.a.b[0]`, `$Context.Current.Input`, `$Output.x[*].y` (new syntax; `$input` etc. are
accepted as aliases), or `$.a` / `$` (old syntax: the step's own input). Functions are the
built-ins of common.fdl.functions (new syntax only), nested at most 10 deep.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

from common.fdl.errors import ExpressionError
from common.fdl.functions import BUILTINS, Env, json_equal, json_text
from common.fdl.paths import MISSING, PathError, parse_path, resolve

__all__ = ["Compiled", "Env", "ExpressionError", "compile_expression", "truthy"]

Compiled = Callable[[Env], Any]
Dialect = Literal["new", "old"]
MAX_CALL_DEPTH = 10
MAX_NESTING = 64  # parentheses, brackets, braces and prefix operators, one inside another

NEW_ROOTS = {"$Input": "$Input", "$Output": "$Output", "$Context": "$Context", "$input": "$Input", "$output": "$Output", "$context": "$Context"}
NEW_ROOTS |= {"$Item": "$Item", "$item": "$Item"}  # a distributed Map's ItemConstructor (common/fdl/distributed.py)
OLD_ROOTS = {"$": "$", "$input": "$"}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<path>\$[A-Za-z]*(?:\.[^\s.\[\](),=!<>&|+*/%'"?:{}]+|\[(?:\d+|\*|'[^']*'|"[^"]*")\])*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!+\-*/%()\[\]{},:.])
    """,
    re.VERBOSE,
)


def truthy(value: Any) -> bool:
    """Condition truthiness: null, false, 0, "", [] and {} are false; everything else is true."""
    return bool(value)


@lru_cache(maxsize=8192)
def compile_expression(text: str, dialect: Dialect = "new", missing: Literal["error", "null"] = "error") -> Compiled:
    """Compile an expression; ExpressionError if it is malformed. `missing`: what a path to absent data gives."""
    if not isinstance(text, str):
        raise ExpressionError("an expression must be a string")
    tokens = _lex(text)
    parser = _Parser(text, tokens, dialect, missing)
    try:
        fn = parser.expr()
    except RecursionError:  # MAX_NESTING should come first; this keeps any other path a 400 too
        raise ExpressionError(f"'{text[:40]}...' is nested too deeply") from None
    if parser.pos != len(tokens):
        raise ExpressionError(f"unexpected '{tokens[parser.pos][1]}' in '{text}'")
    return fn


def _lex(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExpressionError(f"'{text}' cannot be read at position {pos}: '{text[pos:pos + 10]}'")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group()))
        pos = m.end()
    if not out:
        raise ExpressionError("an expression cannot be empty")
    return out


class _Parser:
    def __init__(self, text: str, tokens: list[tuple[str, str]], dialect: Dialect, missing: str) -> None:
        self.text, self.tokens, self.dialect, self.missing = text, tokens, dialect, missing
        self.pos = 0
        self.depth = 0  # function calls
        self.nesting = 0  # everything that nests, so that neither parsing nor evaluation recurses without bound

    # ------------------------------------------------------------ helpers

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, op: str) -> bool:
        if self.peek() == ("op", op):
            self.pos += 1
            return True
        return False

    def need(self, op: str) -> None:
        if not self.take(op):
            got = self.peek()[1] or "the end"
            raise ExpressionError(f"expected '{op}' but found '{got}' in '{self.text}'")

    def binary(self, ops: dict[str, Callable[[Any, Any], Any]], sub: Callable[[], Compiled]) -> Compiled:
        left = sub()
        while self.peek()[0] == "op" and self.peek()[1] in ops:
            fn = ops[self.tokens[self.pos][1]]
            self.pos += 1
            right = sub()
            left = _apply2(fn, left, right)
        return left

    # ------------------------------------------------------------ grammar

    def expr(self) -> Compiled:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ExpressionError(f"'{self.text[:40]}...' is nested more than {MAX_NESTING} levels deep")
        try:
            return self._or()
        finally:
            self.nesting -= 1

    def _or(self) -> Compiled:
        left = self.conj()
        while self.take("||"):
            right = self.conj()
            left = _or(left, right)
        return left

    def conj(self) -> Compiled:
        left = self.equality()
        while self.take("&&"):
            right = self.equality()
            left = _and(left, right)
        return left

    def equality(self) -> Compiled:
        return self.binary({"==": json_equal, "!=": lambda a, b: not json_equal(a, b)}, self.comparison)

    def comparison(self) -> Compiled:
        return self.binary({"<": _lt, "<=": _le, ">": lambda a, b: _lt(b, a), ">=": lambda a, b: _le(b, a)}, self.sum)

    def sum(self) -> Compiled:
        return self.binary({"+": _plus, "-": _arith("-")}, self.product)

    def product(self) -> Compiled:
        return self.binary({"*": _arith("*"), "/": _arith("/"), "%": _arith("%")}, self.unary)

    def unary(self) -> Compiled:
        if self.take("!"):
            inner = self._prefixed()
            return lambda env: not truthy(inner(env))
        if self.take("-"):
            inner = self._prefixed()
            return _apply2(_arith("-"), lambda env: 0, inner)
        return self.postfix()

    def _prefixed(self) -> Compiled:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ExpressionError(f"'{self.text[:40]}...' is nested more than {MAX_NESTING} levels deep")
        try:
            return self.unary()
        finally:
            self.nesting -= 1

    def postfix(self) -> Compiled:
        fn = self.primary()
        while True:
            if self.take("."):
                kind, name = self.peek()
                if kind != "name":
                    raise ExpressionError(f"expected a field name after '.' in '{self.text}'")
                self.pos += 1
                fn = _member(fn, name)
            elif self.take("["):
                index = self.expr()
                self.need("]")
                fn = _index(fn, index)
            else:
                return fn

    def primary(self) -> Compiled:
        kind, value = self.peek()
        self.pos += 1
        if kind == "num":
            number: int | float = _finite(float(value)) if any(c in value for c in ".eE") else int(value)
            return lambda env: number
        if kind == "str":
            text = _string_literal(value, self.text)
            return lambda env: text
        if kind == "path":
            return self.path(value)
        if kind == "name":
            if value in ("true", "false", "null"):
                constant = {"true": True, "false": False, "null": None}[value]
                return lambda env: constant
            if self.take("("):
                return self.call(value)
            raise ExpressionError(f"'{value}' in '{self.text}' is not a value: quote strings, start paths with '$'")
        if (kind, value) == ("op", "("):
            inner = self.expr()
            self.need(")")
            return inner
        if (kind, value) == ("op", "["):
            return self.array()
        if (kind, value) == ("op", "{"):
            return self.obj()
        raise ExpressionError(f"unexpected '{value or 'end'}' in '{self.text}'")

    def path(self, text: str) -> Compiled:
        try:
            root, segments = parse_path(text)
        except PathError as exc:
            raise ExpressionError(str(exc)) from None
        roots = NEW_ROOTS if self.dialect == "new" else OLD_ROOTS
        if root not in roots:
            allowed = "$Input, $Output or $Context" if self.dialect == "new" else "$ (the step input), as in $.key"
            raise ExpressionError(f"unknown root '{root}' in '{text}' (use {allowed})")
        key = roots[root]
        if self.missing == "null":

            def lenient(env: Env) -> Any:
                data = env.roots.get(key, MISSING)
                value = MISSING if data is MISSING else resolve(data, segments)
                return None if value is MISSING else value

            return lenient

        def strict(env: Env) -> Any:
            data = env.roots.get(key, MISSING)
            if data is MISSING:
                raise ExpressionError(f"'{root}' is not available here")
            value = resolve(data, segments)
            if value is MISSING:
                raise ExpressionError(f"'{text}' refers to a field that does not exist")
            return value

        return strict

    def call(self, name: str) -> Compiled:
        if self.dialect == "old":
            raise ExpressionError(f"functions such as '{name}()' are not part of old-syntax conditions")
        builtin = BUILTINS.get(name)
        if builtin is None:
            raise ExpressionError(f"unknown function '{name}()' in '{self.text}'")
        self.depth += 1
        if self.depth > MAX_CALL_DEPTH:
            raise ExpressionError(f"'{self.text}' nests more than {MAX_CALL_DEPTH} function calls")
        args: list[Compiled] = []
        if not self.take(")"):
            while True:
                args.append(self.expr())
                if self.take(")"):
                    break
                self.need(",")
        self.depth -= 1
        if len(args) < builtin.min_args or (builtin.max_args is not None and len(args) > builtin.max_args):
            want = str(builtin.min_args) if builtin.max_args == builtin.min_args else (
                f"at least {builtin.min_args}" if builtin.max_args is None else f"{builtin.min_args} to {builtin.max_args}"
            )
            raise ExpressionError(f"{name}() takes {want} argument(s), not {len(args)}")
        fn, with_env = builtin.fn, builtin.needs_env

        def invoke(env: Env) -> Any:
            values = [a(env) for a in args]
            try:
                return _finite(fn(env, *values) if with_env else fn(*values))
            except ExpressionError:
                raise
            except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:
                raise ExpressionError(f"{name}(): {exc}") from None

        return invoke

    def array(self) -> Compiled:
        items: list[Compiled] = []
        if not self.take("]"):
            while True:
                items.append(self.expr())
                if self.take("]"):
                    break
                self.need(",")
        return lambda env: [i(env) for i in items]

    def obj(self) -> Compiled:
        pairs: list[tuple[str, Compiled]] = []
        if not self.take("}"):
            while True:
                kind, value = self.peek()
                if kind not in ("str", "name"):
                    raise ExpressionError(f"expected an object key in '{self.text}'")
                self.pos += 1
                key = _string_literal(value, self.text) if kind == "str" else value
                self.need(":")
                pairs.append((key, self.expr()))
                if self.take("}"):
                    break
                self.need(",")
        return lambda env: {k: v(env) for k, v in pairs}


# ---------------------------------------------------------------- runtime pieces


def _string_literal(token: str, text: str) -> str:
    body = token[1:-1]
    if token[0] == "'":
        body = body.replace("\\'", "'").replace('"', '\\"')
    try:
        value = json.loads(f'"{body}"')
    except ValueError:
        raise ExpressionError(f"bad string literal {token} in '{text}'") from None
    return str(value)


def _apply2(fn: Callable[[Any, Any], Any], left: Compiled, right: Compiled) -> Compiled:
    return lambda env: fn(left(env), right(env))


def _or(left: Compiled, right: Compiled) -> Compiled:
    return lambda env: truthy(left(env)) or truthy(right(env))


def _and(left: Compiled, right: Compiled) -> Compiled:
    return lambda env: truthy(left(env)) and truthy(right(env))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _lt(a: Any, b: Any) -> bool:
    """Numbers with numbers, strings with strings; any other pair is not ordered (false)."""
    if _is_number(a) and _is_number(b):
        return bool(a < b)
    if isinstance(a, str) and isinstance(b, str):
        return a < b
    return False


def _le(a: Any, b: Any) -> bool:
    return _lt(a, b) or ((_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))) and json_equal(a, b)


def _plus(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    if isinstance(a, list) and isinstance(b, list):
        return a + b
    return _arith("+")(a, b)


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity: a computation that makes one is an error."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"the result {value} is not a JSON number")
    return value


def _arith(op: str) -> Callable[[Any, Any], Any]:
    def fn(a: Any, b: Any) -> Any:
        if not (_is_number(a) and _is_number(b)):
            raise ExpressionError(f"'{op}' needs numbers, got {json_text(a)[:40]} and {json_text(b)[:40]}")
        if op == "+":
            return _finite(a + b)
        if op == "-":
            return _finite(a - b)
        if op == "*":
            return _finite(a * b)
        if b == 0:
            raise ExpressionError(f"division by zero in '{op}'")
        if op == "%":
            return _finite(a % b)
        if isinstance(a, int) and isinstance(b, int) and a % b == 0:
            return a // b
        return _finite(a / b)

    return fn


def _member(fn: Compiled, name: str) -> Compiled:
    def get(env: Env) -> Any:
        value = fn(env)
        if isinstance(value, dict) and name in value:
            return value[name]
        raise ExpressionError(f"no field '{name}' in {json_text(value)[:60]}")

    return get


def _index(fn: Compiled, index: Compiled) -> Compiled:
    def get(env: Env) -> Any:
        value, key = fn(env), index(env)
        if isinstance(value, list) and _is_number(key) and int(key) == key and -len(value) <= key < len(value):
            return value[int(key)]
        if isinstance(value, dict) and isinstance(key, str) and key in value:
            return value[key]
        raise ExpressionError(f"no item {json_text(key)[:20]} in {json_text(value)[:60]}")

    return get


# ---------------------------------------------------------------- constructors


Template = Callable[[Env], dict[str, Any]]


def compile_constructor(template: dict[str, Any]) -> Template:
    """Compile a constructor (InputConstructor, OutputConstructor, Parameters, Catch OutputConstructor).

    Keys ending in `.$` hold expressions (the produced key drops the suffix); other values are
    constants, searched recursively for nested `.$` keys.
    """
    parts: list[tuple[str, Compiled]] = []
    for key, value in template.items():
        if key.endswith(".$"):
            parts.append((key[:-2], compile_expression(value)))
        else:
            parts.append((key, _compile_constant(value)))
    return lambda env: {k: fn(env) for k, fn in parts}


def _compile_constant(value: Any) -> Compiled:
    if isinstance(value, dict):
        if any(k.endswith(".$") for k in value) or any(isinstance(v, (dict, list)) for v in value.values()):
            return compile_constructor(value)
    elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [_compile_constant(v) for v in value]
        return lambda env: [i(env) for i in items]
    return lambda env: value  # data is never mutated in place, so sharing the constant is safe


def check_constructor(template: Any, where: str) -> list[str]:
    """Every problem of a constructor template, as `where: what` messages (empty if it compiles)."""
    problems: list[str] = []
    if isinstance(template, dict):
        for key, value in template.items():
            if key.endswith(".$"):
                if not isinstance(value, str):
                    problems.append(f"{where}.{key} must be an expression string")
                    continue
                try:
                    compile_expression(value)
                except ExpressionError as exc:
                    problems.append(f"{where}.{key}: {exc}")
            else:
                problems.extend(check_constructor(value, f"{where}.{key}"))
    elif isinstance(template, list):
        for i, value in enumerate(template):
            problems.extend(check_constructor(value, f"{where}[{i}]"))
    return problems
