"""Built-in functions of new-syntax expressions (`format(...)`, `uuid()`, ...), by family.

The cloud documents `arrayContains`, `arrayUnique`, `format`, `fromBase64`, `stringToJson` and
`uuid`, and names more in its index (`length`, `split`, `regexMatchString`, `get`, `intAdd`,
`randomInt`, `toArray`, `mapKeys`, `mapValues`, `hash`, `jsonMerge`, `fromJSON`). The rest of each
family (string, array, map, encoding, hash, JSON, math) is OpenFnF's, listed in
docs/compatibility.md. Randomness is deterministic: `uuid()` and `randomInt()` draw from the
evaluation's seed (execution name + event id), so a replay computes the same values.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.fdl.errors import ExpressionError
from common.jsonlimits import HARD_MAX_DEPTH, JsonRefused, load_json


class Env:
    """What an expression is evaluated against: the data roots and a deterministic source of randomness."""

    __slots__ = ("roots", "seed", "draws")

    def __init__(self, roots: dict[str, Any], seed: str | tuple[Any, ...] = "") -> None:
        self.roots = roots
        self.seed = seed
        self.draws = 0

    def random_bytes(self) -> bytes:
        """16 bytes that depend only on the seed and how many draws came before (never on a clock or RNG)."""
        self.draws += 1
        seed = self.seed if isinstance(self.seed, str) else "/".join(str(part) for part in self.seed)
        return hashlib.sha256(f"{seed}#{self.draws}".encode()).digest()[:16]


@dataclass(frozen=True)
class Builtin:
    """One function: how many arguments it takes, and whether it needs the Env."""

    fn: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: variadic
    needs_env: bool = False


def json_text(value: Any) -> str:
    """Compact JSON, as jsonToString and format() render non-strings."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _want(name: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (kind in (int, (int, float)) and isinstance(value, bool)):
        raise ExpressionError(f"{name}() needs {what}, got {json_text(value)[:60]}")
    return value


def _num(name: str, value: Any) -> int | float:
    if not _is_number(value):
        raise ExpressionError(f"{name}() needs numbers, got {json_text(value)[:60]}")
    return value  # type: ignore[no-any-return]


def _int(name: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ExpressionError(f"{name}() needs integers, got {json_text(value)[:60]}")
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json_text(value)


# ---------------------------------------------------------------- common / string


def _format(template: Any, *args: Any) -> str:
    tpl = _want("format", template, str, "a template string")
    parts = tpl.split("{}")
    if len(parts) - 1 != len(args):
        raise ExpressionError(f"format() template has {len(parts) - 1} placeholder(s) for {len(args)} argument(s)")
    out = [parts[0]]
    for arg, rest in zip(args, parts[1:], strict=True):
        out.append(_text(arg))
        out.append(rest)
    return "".join(out)


def _length(value: Any) -> int:
    if isinstance(value, (str, list, dict)):
        return len(value)
    raise ExpressionError(f"length() needs a string, array or map, got {json_text(value)[:60]}")


def _get(container: Any, key: Any) -> Any:
    if isinstance(container, list):
        index = _int("get", key)
        return container[index] if -len(container) <= index < len(container) else None
    if isinstance(container, dict):
        return container.get(_want("get", key, str, "a string key for a map"))
    raise ExpressionError(f"get() needs an array or a map, got {json_text(container)[:60]}")


def _regex_match(text: Any, pattern: Any) -> bool:
    try:
        compiled = re.compile(_want("regexMatchString", pattern, str, "a pattern string"))
    except re.error as exc:
        raise ExpressionError(f"regexMatchString(): bad pattern: {exc}") from None
    return compiled.search(_want("regexMatchString", text, str, "a string")) is not None


def _split(text: Any, sep: Any) -> list[str]:
    s, d = _want("split", text, str, "a string"), _want("split", sep, str, "a separator string")
    return list(s) if d == "" else s.split(d)


def _substring(text: Any, start: Any, end: Any = None) -> str:
    s: str = _want("substring", text, str, "a string")
    return s[_int("substring", start) : None if end is None else _int("substring", end)]


def _join(items: Any, sep: Any = "") -> str:
    separator: str = _want("join", sep, str, "a separator string")
    return separator.join(_text(v) for v in _want("join", items, list, "an array"))


# ---------------------------------------------------------------- array


def _array_contains(items: Any, value: Any) -> bool:
    return any(json_equal(v, value) for v in _want("arrayContains", items, list, "an array"))


def _array_unique(items: Any) -> list[Any]:
    seen: set[str] = set()
    out = []
    for v in _want("arrayUnique", items, list, "an array"):
        key = json.dumps(v, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _array_concat(*arrays: Any) -> list[Any]:
    out: list[Any] = []
    for a in arrays:
        out.extend(_want("arrayConcat", a, list, "arrays"))
    return out


def _array_range(start: Any, end: Any, step: Any = 1) -> list[int]:
    a, b, s = _int("arrayRange", start), _int("arrayRange", end), _int("arrayRange", step)
    if s == 0:
        raise ExpressionError("arrayRange() step must not be 0")
    if abs((b - a) // s) > 10_000:
        raise ExpressionError("arrayRange() would make more than 10000 items")
    return list(range(a, b, s))


def _array_partition(items: Any, size: Any) -> list[list[Any]]:
    arr, n = _want("arrayPartition", items, list, "an array"), _int("arrayPartition", size)
    if n <= 0:
        raise ExpressionError("arrayPartition() size must be positive")
    return [arr[i : i + n] for i in range(0, len(arr), n)]


def _array_slice(items: Any, start: Any, end: Any = None) -> list[Any]:
    arr: list[Any] = _want("arraySlice", items, list, "an array")
    return arr[_int("arraySlice", start) : None if end is None else _int("arraySlice", end)]


# ---------------------------------------------------------------- map / JSON


def _map(name: str, value: Any) -> dict[str, Any]:
    return _want(name, value, dict, "a map")  # type: ignore[no-any-return]


def _json_merge(*maps: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in maps:
        out.update(_map("jsonMerge", m))
    return out


def _string_to_json(text: Any) -> Any:
    try:
        return load_json(_want("stringToJson", text, str, "a JSON string"), HARD_MAX_DEPTH)
    except JsonRefused as exc:
        raise ExpressionError(f"stringToJson(): the text {exc}") from None
    except ValueError as exc:
        raise ExpressionError(f"stringToJson(): not JSON: {exc}") from None


# ---------------------------------------------------------------- encoding / hash


def _to_base64(text: Any) -> str:
    return base64.b64encode(_text(text).encode("utf-8")).decode("ascii")


def _from_base64(text: Any) -> str:
    try:
        return base64.b64decode(_want("fromBase64", text, str, "a string"), validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise ExpressionError(f"fromBase64(): not base64 of UTF-8 text: {exc}") from None


HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA1": "sha1", "SHA-256": "sha256", "SHA256": "sha256", "SHA-512": "sha512", "SHA512": "sha512"}


def _hash(text: Any, algorithm: Any = "SHA-256") -> str:
    alg = HASHES.get(str(algorithm).upper())
    if alg is None:
        raise ExpressionError(f"hash(): algorithm must be one of MD5, SHA-1, SHA-256, SHA-512, not {json_text(algorithm)}")
    return hashlib.new(alg, _text(text).encode("utf-8")).hexdigest()


def _uuid(env: Env) -> str:
    b = bytearray(env.random_bytes())
    b[6] = (b[6] & 0x0F) | 0x40  # version 4 layout, deterministic content
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _random_int(env: Env, low: Any, high: Any) -> int:
    a, b = _int("randomInt", low), _int("randomInt", high)
    if b <= a:
        raise ExpressionError("randomInt(min, max) needs min < max")
    return a + int.from_bytes(env.random_bytes()[:8], "big") % (b - a)


# ---------------------------------------------------------------- math


def _divide(a: Any, b: Any) -> int | float:
    x, y = _num("divide", a), _num("divide", b)
    if y == 0:
        raise ExpressionError("divide(): division by zero")
    q = x / y
    return int(q) if isinstance(x, int) and isinstance(y, int) and x % y == 0 else q


def _mod(a: Any, b: Any) -> int | float:
    x, y = _num("mod", a), _num("mod", b)
    if y == 0:
        raise ExpressionError("mod(): division by zero")
    return x % y


def _round(x: Any, digits: Any = 0) -> int | float:
    n = _int("round", digits)
    value = math.floor(_num("round", x) * 10**n + 0.5) / 10**n  # half up, not banker's rounding
    return int(value) if n <= 0 else value


def _extreme(name: str, pick: Callable[..., Any]) -> Callable[..., Any]:
    def fn(*args: Any) -> Any:
        values = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
        if not values:
            raise ExpressionError(f"{name}() needs at least one number")
        return pick(_num(name, v) for v in values)

    return fn


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1 and "1" != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


B = Builtin
BUILTINS: dict[str, Builtin] = {
    # common and string
    "format": B(_format, 1, None),
    "length": B(_length, 1, 1),
    "get": B(_get, 2, 2),
    "regexMatchString": B(_regex_match, 2, 2),
    "split": B(_split, 2, 2),
    "join": B(_join, 1, 2),
    "concat": B(lambda *a: "".join(_text(v) for v in a), 1, None),
    "toString": B(_text, 1, 1),
    "toUpperCase": B(lambda s: _want("toUpperCase", s, str, "a string").upper(), 1, 1),
    "toLowerCase": B(lambda s: _want("toLowerCase", s, str, "a string").lower(), 1, 1),
    "trim": B(lambda s: _want("trim", s, str, "a string").strip(), 1, 1),
    "substring": B(_substring, 2, 3),
    "replace": B(lambda s, a, b: _want("replace", s, str, "a string").replace(_text(a), _text(b)), 3, 3),
    "stringContains": B(lambda s, sub: _text(sub) in _want("stringContains", s, str, "a string"), 2, 2),
    "startsWith": B(lambda s, p: _want("startsWith", s, str, "a string").startswith(_text(p)), 2, 2),
    "endsWith": B(lambda s, p: _want("endsWith", s, str, "a string").endswith(_text(p)), 2, 2),
    # array
    "arrayContains": B(_array_contains, 2, 2),
    "arrayUnique": B(_array_unique, 1, 1),
    "toArray": B(lambda *a: list(a), 0, None),
    "arrayLength": B(lambda a: len(_want("arrayLength", a, list, "an array")), 1, 1),
    "arrayConcat": B(_array_concat, 1, None),
    "arrayRange": B(_array_range, 2, 3),
    "arrayPartition": B(_array_partition, 2, 2),
    "arraySlice": B(_array_slice, 2, 3),
    # map
    "mapKeys": B(lambda m: list(_map("mapKeys", m).keys()), 1, 1),
    "mapValues": B(lambda m: list(_map("mapValues", m).values()), 1, 1),
    "mapContainsKey": B(lambda m, k: _text(k) in _map("mapContainsKey", m), 2, 2),
    # encoding
    "toBase64": B(_to_base64, 1, 1),
    "fromBase64": B(_from_base64, 1, 1),
    "urlEncode": B(lambda s: urllib.parse.quote(_text(s), safe=""), 1, 1),
    "urlDecode": B(lambda s: urllib.parse.unquote(_want("urlDecode", s, str, "a string")), 1, 1),
    # hash and UUID
    "hash": B(_hash, 1, 2),
    "uuid": B(_uuid, 0, 0, needs_env=True),
    # JSON
    "stringToJson": B(_string_to_json, 1, 1),
    "fromJSON": B(_string_to_json, 1, 1),
    "fromJson": B(_string_to_json, 1, 1),
    "jsonToString": B(json_text, 1, 1),
    "toJSON": B(json_text, 1, 1),
    "toJson": B(json_text, 1, 1),
    "jsonMerge": B(_json_merge, 2, None),
    # math
    "intAdd": B(lambda a, b: _int("intAdd", a) + _int("intAdd", b), 2, 2),
    "add": B(lambda a, b: _num("add", a) + _num("add", b), 2, 2),
    "subtract": B(lambda a, b: _num("subtract", a) - _num("subtract", b), 2, 2),
    "multiply": B(lambda a, b: _num("multiply", a) * _num("multiply", b), 2, 2),
    "divide": B(_divide, 2, 2),
    "mod": B(_mod, 2, 2),
    "abs": B(lambda a: abs(_num("abs", a)), 1, 1),
    "floor": B(lambda a: math.floor(_num("floor", a)), 1, 1),
    "ceil": B(lambda a: math.ceil(_num("ceil", a)), 1, 1),
    "round": B(_round, 1, 2),
    "min": B(_extreme("min", min), 1, None),
    "max": B(_extreme("max", max), 1, None),
    "randomInt": B(_random_int, 2, 2, needs_env=True),
}
