"""`openfnf dev` prints the console's address beside the endpoint, as the settings place it."""
from __future__ import annotations

import pytest

from openfnf.consoleaddr import console_address, console_line


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http://127.0.0.1:8080/console/"),
        ({"OPENFNF_CONSOLE": "true", "OPENFNF_CONSOLE_PORT": "0"}, "http://127.0.0.1:8080/console/"),
        ({"OPENFNF_CONSOLE_PORT": "9090"}, "http://127.0.0.1:9090/console/"),
        ({"OPENFNF_CONSOLE": "false"}, None),
    ],
)
def test_console_address(env: dict[str, str], expected: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENFNF_CONSOLE", "OPENFNF_CONSOLE_PORT"):
        monkeypatch.delenv(var, raising=False)
    assert console_address("127.0.0.1", 8080, env) == expected
    assert console_line("127.0.0.1", 8080, env) == (f"  console:           {expected}\n" if expected else "")
