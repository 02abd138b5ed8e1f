"""Expressions and conditions: the grammar, the data rules of paths, built-ins and their errors."""
from __future__ import annotations

from typing import Any

import pytest

from common.fdl.errors import ExpressionError
from common.fdl.expressions import compile_expression
from common.fdl.functions import BUILTINS, Env

DATA = {"a": 1, "s": "str", "list": [1, 2, 3], "obj": {"k": "v", "n": None}, "rows": [{"id": 1}, {"id": 2}], "名前": "値", "f": 2.5}


def new(text: str, missing: str = "error", **roots: Any) -> Any:
    env = Env({"$Input": DATA, "$Context": {"Current": {"Name": "S"}}, **roots}, "seed")
    return compile_expression(text, "new", missing)(env)  # type: ignore[arg-type]


def old(text: str) -> Any:
    return compile_expression(text, "old", "null")(Env({"$": DATA}))


VALUES = [
    ("$Input.a", 1),
    ("$input.a", 1),  # lower-case roots as in the docs' own example
    ("$Input", DATA),
    ("$Input.list[1]", 2),
    ("$Input.list[-1]", 3),
    ("$Input.rows[*].id", [1, 2]),
    ("$Input.obj['k']", "v"),
    ('$Input.obj["k"]', "v"),
    ("$Input.名前", "値"),
    ("$Context.Current.Name", "S"),
    ("1", 1), ("1.5", 1.5), ("1e3", 1000.0), ("-2", -2), ('"x"', "x"), ("'y'", "y"), ("'it\\'s'", "it's"), ('"a\\nb"', "a\nb"),
    ("true", True), ("false", False), ("null", None),
    ("[1, 'a', [true]]", [1, "a", [True]]), ('{"k": 1, j: [2]}', {"k": 1, "j": [2]}), ("[]", []), ("{}", {}),
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("7 / 2", 3.5), ("8 / 2", 4), ("10000000000000000000001 / 1", 10000000000000000000001), ("7 % 3", 1), ("2 - 5", -3), ("--1", 1),
    ('"a" + "b"', "ab"), ("[1] + [2]", [1, 2]),
    ("1 == 1.0", True), ("true == 1", False), ('"1" == 1', False), ("null == null", True), ("$Input.obj.n == null", True),
    ("[1, {\"a\": 2}] == [1, {\"a\": 2}]", True), ("1 != 2", True),
    ("2 > 1", True), ("2 >= 2", True), ("1 < 2", True), ("2 <= 1", False), ('"abc" < "abd"', True),
    ('1 < "2"', False), ("null < 1", False), ("null >= null", False),  # no order between different types
    ("!true", False), ("!0", True), ("![]", True), ('!""', True), ("!{}", True), ("!$Input.obj", False),
    ("true && false", False), ("false || 1", True), ("1 && 2 && 0", False),
    ("$Input.a == 1 && ($Input.s == 'x' || $Input.f > 2)", True),
    ("length($Input.list) + 1", 4), ("stringToJson('{\"x\": [5]}').x[0]", 5), ("toArray(1, 2)[1]", 2),
    ("format('{}-{}', $Input.a, $Input.list)", "1-[1,2,3]"),
]


@pytest.mark.parametrize("text, value", VALUES, ids=[t for t, _ in VALUES])
def test_new_expression_values(text: str, value: Any) -> None:
    assert new(text) == value


@pytest.mark.parametrize(
    "text, value",
    [("$.a", 1), ("$", DATA), ("$.missing", None), ("$.missing.deeper", None), ("$input.a", 1), ("$.a == 1 && !$.missing", True),
     ("$.list[5] == null", True), ("$.rows[1].id >= 2", True)],
)  # fmt: skip
def test_old_condition_values(text: str, value: Any) -> None:
    assert old(text) == value


@pytest.mark.parametrize("text", ["$Input.missing", "$Input.list[9]", "$Output.x", "$Input.a.b"])
def test_a_path_to_absent_data_is_an_error_or_null(text: str) -> None:
    with pytest.raises(ExpressionError):
        new(text)
    assert new(text, missing="null") is None


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("1 / 0", "division by zero"), ("1 + 'a'", "needs numbers"), ("length(5)", "length() needs a string, array or map"),
        ("fromBase64('***')", "fromBase64()"), ("stringToJson('{')", "not JSON"), ("format('{} {}', 1)", "2 placeholder(s) for 1"),
        ("hash('a', 'CRC')", "algorithm must be one of"), ("intAdd(1.5, 1)", "needs integers"), ("toArray(1)[3]", "no item 3"),
        ("stringToJson('{}').x", "no field 'x'"), ("randomInt(3, 3)", "min < max"), ("arrayRange(0, 100000)", "more than 10000"),
        ("regexMatchString('a', '(')", "bad pattern"), ("get(1, 2)", "needs an array or a map"), ("divide(1, 0)", "division by zero"),
        ("1e300 * 1e300", "not a JSON number"), ("multiply(1e300, 1e300)", "not a JSON number"),
    ],
)  # fmt: skip
def test_evaluation_errors_are_expression_errors(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError, match=None) as info:
        new(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "cannot be empty"), ("1 +", "unexpected 'end'"), ("(1", "expected ')'"), ("a", "is not a value"), ("$Foo.a", "unknown root"),
        ("nope()", "unknown function"), ("uuid(1)", "takes 0 argument(s)"), ("1 2", "unexpected '2'"), ("$Input.", "expected a field name after '.'"),
        ("{1: 2}", "expected an object key"), ("'unclosed", "cannot be read"), ("1 === 1", "cannot be read"),
        ("1e999", "not a JSON number"),
    ],
)  # fmt: skip
def test_compile_errors(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert fragment in str(info.value)


def test_old_conditions_have_no_functions_and_only_the_step_input() -> None:
    with pytest.raises(ExpressionError, match="not part of old-syntax conditions"):
        compile_expression("length($.a)", "old", "null")
    with pytest.raises(ExpressionError, match="unknown root"):
        compile_expression("$Input.a", "old", "null")


def test_random_built_ins_depend_only_on_the_seed() -> None:
    fn = compile_expression("toArray(uuid(), uuid(), randomInt(0, 1000000000))")
    first, again, other = fn(Env({}, "exec/3/in")), fn(Env({}, "exec/3/in")), fn(Env({}, "exec/4/in"))
    assert first == again and first != other and first[0] != first[1]


def test_every_family_has_functions() -> None:
    families = {
        "string": {"format", "length", "split", "join", "concat", "toUpperCase", "toLowerCase", "trim", "substring", "replace", "regexMatchString"},
        "array": {"arrayContains", "arrayUnique", "toArray", "arrayLength", "arrayConcat", "arrayRange", "arrayPartition", "arraySlice", "get"},
        "map": {"mapKeys", "mapValues", "mapContainsKey", "jsonMerge"},
        "encoding": {"toBase64", "fromBase64", "urlEncode", "urlDecode"},
        "hash": {"hash", "uuid"},
        "json": {"stringToJson", "fromJSON", "jsonToString", "toJSON", "jsonMerge"},
        "math": {"intAdd", "add", "subtract", "multiply", "divide", "mod", "abs", "floor", "ceil", "round", "min", "max", "randomInt"},
    }
    for family, names in families.items():
        assert names <= set(BUILTINS), (family, names - set(BUILTINS))
