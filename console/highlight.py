"""The flow definition as highlighted HTML (Pygments' YAML lexer, classes styled by console.css)."""
from __future__ import annotations

from pygments import highlight  # type: ignore[import-untyped]
from pygments.formatters import HtmlFormatter  # type: ignore[import-untyped]
from pygments.lexers import YamlLexer  # type: ignore[import-untyped]

_FORMATTER = HtmlFormatter(cssclass="yaml", nowrap=False, linenos=False)


def yaml_html(text: str) -> str:
    """Escaped, highlighted HTML of a YAML text (Pygments escapes every token)."""
    return str(highlight(text, YamlLexer(), _FORMATTER))
