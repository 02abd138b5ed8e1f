"""common/jsonlimits.py: the one reader and writer of outside JSON (depth bounded, numbers finite)."""
from __future__ import annotations

import json
import math
from typing import Any

import pytest

from common.jsonlimits import HARD_MAX_DEPTH, JsonRefused, dumps, loads, normalize, too_deep


def nested(depth: int, leaf: str = "1") -> str:
    """JSON text of `depth` levels: alternating arrays and objects."""
    text = leaf
    for i in range(depth):
        text = f"[{text}]" if i % 2 else f'{{"k":{text}}}'
    return text


@pytest.mark.parametrize("depth", [1, 2, 63, 64])
def test_up_to_the_limit_is_read(depth: int) -> None:
    assert not too_deep(loads(nested(depth), 64), 64)


@pytest.mark.parametrize("depth", [65, 66, 990, 5000, 100_000])
def test_past_the_limit_is_refused_at_any_depth(depth: int) -> None:
    with pytest.raises(JsonRefused, match="nests deeper than 64 levels"):
        loads(nested(depth), 64)
    with pytest.raises(JsonRefused, match="nests deeper than 64 levels"):
        loads(nested(depth).encode(), 64)


def test_brackets_inside_strings_do_not_count() -> None:
    assert loads(json.dumps({"s": "[" * 1000}), 2) == {"s": "[" * 1000}
    assert too_deep([[[1]]], 2) and not too_deep([[1], [1]], 2) and not too_deep("x", 0)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"a": NaN}', "[1, Infinity]", "1e400", '{"x": -1e999}'])
def test_nan_and_infinity_are_refused(text: str) -> None:
    with pytest.raises(JsonRefused, match="JSON number"):
        loads(text, 64)


@pytest.mark.parametrize("text", ["", "{", "nan", "[1,]"])
def test_text_that_is_not_json_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        loads(text, 64)


def test_numbers_at_the_edges_are_kept() -> None:
    assert loads("[1e308, -1e308, 5e-324, 12345678901234567890]", 64) == [1e308, -1e308, 5e-324, 12345678901234567890]


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value, why",
    [
        (float("nan"), "not JSON"),
        ({"a": [math.inf]}, "not JSON"),
        ({1, 2}, "not JSON"),
        (object(), "not JSON"),
        (_deep(65), "nests deeper than 64"),
        (_deep(5000), "nests deeper than 64"),
    ],
)
def test_python_values_that_are_not_json_are_refused(value: Any, why: str) -> None:
    with pytest.raises(JsonRefused, match=why):
        normalize(value, 64)


def test_a_value_that_contains_itself_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(JsonRefused):
        normalize(loop, 64)


def test_normalize_gives_the_json_value() -> None:
    assert normalize({"t": (1, 2), 3: None, "s": "é"}, 64) == {"t": [1, 2], "3": None, "s": "é"}
    assert normalize(_deep(64), 64) == _deep(64)
    assert normalize("text", 64) == "text" and normalize(None, 64) is None


def test_dumps_never_writes_nan() -> None:
    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    with pytest.raises(ValueError):
        dumps({"a": math.nan})


def test_the_hard_maximum_is_safe_from_recursion() -> None:
    value = loads(nested(HARD_MAX_DEPTH + 1), HARD_MAX_DEPTH + 1)
    assert json.loads(dumps(value)) == value
