"""Student text is bounded and shown without control codes; CSV cells run no formulas."""

from grader.safetext import csv_cell, one_line, printable


def test_terminal_escapes_become_visible():
    clipboard = "\x1b]52;c;ZXZpbA==\x07owned\x1b[2J\x9b31m"
    shown = printable(clipboard)
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert "\\x1b]52;c;ZXZpbA==\\x07owned" in shown


def test_newlines_and_tabs_survive_but_carriage_return_does_not():
    assert printable("a\n\tb\rc") == "a\n\tb\\x0dc"


def test_bidi_overrides_and_surrogates_are_escaped():
    shown = printable("ok\u202egnp.exe\ud800")
    assert "\u202e" not in shown and "\\u202e" in shown and "\\ud800" in shown
    shown.encode("utf-8")  # encodable


def test_length_is_capped_and_says_how_much_was_dropped():
    shown = printable("x" * 10_000, limit=100)
    assert shown.startswith("x" * 100) and "9900 more characters" in shown
    assert len(shown) < 140


def test_one_line_flattens():
    assert one_line("a\nb\r\nc\td") == "a b c d"


def test_csv_cell_neutralises_formulas():
    for evil in ('=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)"):
        assert csv_cell(evil).startswith("'")
    assert csv_cell("alice") == "alice"
    assert csv_cell(-2.5) == "-2.5"
    assert csv_cell(3) == "3"
