"""Free text from callers: one line, no control characters (docs/api.md §4), and safe escaping.

``OneLine`` is the type of every free-text request field (a user's ``name``, an admin search
string...). It refuses, with a 422 naming the field, the C0 controls (NUL, TAB, CR, LF...), DEL,
the C1 controls and the Unicode line and paragraph separators: such characters split log lines,
inject headers into emails, and PostgreSQL cannot store NUL at all (it used to be a 500 that
told whether an address was registered).
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import AfterValidator

#: C0 (incl. NUL, TAB, CR, LF), DEL, C1, LINE SEPARATOR, PARAGRAPH SEPARATOR.
CONTROL_CHARACTERS: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: What may not reach a database or a header: C0 and DEL (C1 is left alone where text is a
#: Latin-1 view of UTF-8 bytes, as HTTP header values are in ASGI).
C0_AND_DEL: Final = re.compile("[\x00-\x1f\x7f]")


def _one_line(value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        # The message names no character and echoes nothing of the input.
        raise ValueError("must be a single line without control characters")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]


def escape_controls(value: str) -> str:
    """``value`` with every control character spelled as a visible escape (``\\r``, ``\\x1b``,
    ``\\u2028``), and backslashes doubled so an escape cannot be forged: for log lines."""
    if not CONTROL_CHARACTERS.search(value) and "\\" not in value:
        return value
    return CONTROL_CHARACTERS.sub(_escape_one, value.replace("\\", "\\\\"))


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def scrub_header(value: str) -> str:
    """A header value safe to store and show: C0 controls and DEL become U+FFFD."""
    return C0_AND_DEL.sub("\ufffd", value)
