"""Every setting is documented: each field of common.settings.Settings has its environment variable
named in the README's Settings table (issue 17: "the README's Settings table lists every new setting")."""
from __future__ import annotations

import re
from pathlib import Path

from common.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def settings_table() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Settings\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_every_setting_has_a_row_in_the_readme_settings_table() -> None:
    table = settings_table()
    named = set(re.findall(r"`(OPENFNF_[A-Z0-9_]+)`", "\n".join(line for line in table.splitlines() if line.startswith("| `"))))
    fields = {f"OPENFNF_{name.upper()}" for name in Settings.model_fields}
    assert not fields - named, f"settings missing from README's Settings table: {sorted(fields - named)}"
    assert not named - fields, f"README's Settings table names unknown settings: {sorted(named - fields)}"
