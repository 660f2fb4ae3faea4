"""Make text that came from a submission safe to show: bounded, and free of control codes.

Everything a student's code can put into a string (exception messages, frames, printed
output, class names, folder names) is hostile. Before a terminal, a report, a CSV or a web
page sees it, it goes through `printable` (or `one_line`): terminal escapes (OSC 52 sets the
reader's clipboard, CSI moves the cursor), other control characters and bidirectional
overrides become visible `\\xNN` / `\\uNNNN` escapes, and the length is capped. Rendering
rules of each format (rich markup, XML, HTML, spreadsheet formulas) are the renderer's job;
`csv_cell` covers spreadsheet formula injection.

This module is for the trusted side; it imports nothing but the standard library.
"""

from __future__ import annotations

import re
import unicodedata

DEFAULT_LIMIT = 4000
# Control characters (C0 but newline and tab, DEL, C1), bidirectional overrides and
# isolates, zero-width joiners and the BOM: nothing a reader should get uninterpreted.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """`text` with every control character escaped and at most about `limit` characters.

    Newlines and tabs survive (tracebacks and printed output need them); a carriage return
    does not (it would let text overwrite what came before it on a terminal).
    """
    text = text if isinstance(text, str) else str(text)
    dropped = 0
    if len(text) > limit:
        dropped = len(text) - limit
        text = text[:limit]
    text = _UNSAFE.sub(_escape, text)
    # Unpaired surrogates cannot be encoded by any writer; make them visible too.
    if any(unicodedata.category(c) == "Cs" for c in text):
        text = "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) == "Cs" else c for c in text)
    if dropped:
        text += f" [... {dropped} more characters]"
    return text


def one_line(text: object, limit: int = 500) -> str:
    """`printable` on one line: line breaks become spaces (for names, table cells, CSV)."""
    flat = (text if isinstance(text, str) else str(text)).replace("\r\n", " ")
    flat = flat.replace("\n", " ").replace("\t", " ")
    return printable(flat, limit)


def csv_cell(text: object) -> str:
    """A value safe for a spreadsheet cell: text a spreadsheet would run as a formula is
    prefixed with a quote (OWASP's CSV-injection advice); numbers pass unchanged."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return str(text)
    cell = one_line(text, 1000)
    if cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell
