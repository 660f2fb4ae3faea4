"""A leaderboard (assignment8's, or any assignment whose policy says `leaderboard = true`):
each student's counting submission ranked by held-out accuracy, then training time, then
parameter count.

The figures are the grade's check metrics, which the trusted side computed (accuracy from
logits it scored against labels the worker never saw, time it measured, parameters it
counted in the arrays it received); only public checks' metrics are used, so a hidden
check's figures stay hidden. A student appears under the display name they chose, else as
"anonymous": never their name or id. Display names are student text: bounded, printable,
and escaped by whatever shows them. Since they name people, they are also compared as they
look (`display_key`), so that invisible characters, full-width forms, combining marks or
Cyrillic and Greek look-alikes cannot make one that reads as someone else's.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from grader.errors import BadInput
from grader.safetext import one_line, printable

METRICS = ("accuracy", "training_s", "parameters")
ANONYMOUS = "anonymous"
MAX_DISPLAY_NAME = 40
# Characters that draw nothing but are letters or symbols to Unicode (so no category says so).
_BLANKS = frozenset("\u115f\u1160\u2800\u3164\uffa0")
# Invisible or unassigned: format characters (soft hyphen, bidi marks, tags, ...), controls,
# surrogates, private use, unassigned, line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Cyrillic and Greek letters drawn like Latin ones (after case folding), from Unicode's
# confusables list (the common ones; a name in another script is compared as it is).
_LOOKALIKES = str.maketrans(
    "аαьβсԁеεһіιїјкκӏոηоοσрρԛѕтτυνѵԝхχуγм",
    "aabbcdeehiiijkklnnoooppqsttuvvwxxyym",
)


def figures(report: dict[str, Any]) -> dict[str, float]:
    """The leaderboard's metrics from a JSON report: the first numeric value of each among
    the public checks, in the report's order."""
    found: dict[str, float] = {}
    for test in report.get("tests", []):
        if test.get("hidden"):
            continue
        for key, value in (test.get("metrics") or {}).items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if key in METRICS and key not in found and numeric:
                found[key] = value
    return found


def ranked(
    gradebook: list[dict[str, Any]], display_names: dict[str, str | None], viewer: str
) -> list[dict[str, Any]]:
    """The leaderboard of a gradebook (`Service.gradebook` rows): a row per student whose
    counting submission has an accuracy; `display_names` by student id; `viewer`'s own row
    is marked `you`."""
    entries = []
    for row in gradebook:
        metrics = figures(row.get("report") or {})
        if "accuracy" not in metrics:
            continue
        entries.append(
            {
                "name": display_names.get(row["student"]) or ANONYMOUS,
                "accuracy": metrics["accuracy"],
                "training_s": metrics.get("training_s"),
                "parameters": metrics.get("parameters"),
                "you": row["student"] == viewer,
            }
        )

    def order(entry: dict[str, Any]) -> tuple[float, ...]:
        time, size = entry["training_s"], entry["parameters"]
        inf = float("inf")
        return -entry["accuracy"], inf if time is None else time, inf if size is None else size

    entries.sort(key=order)
    return [{"rank": rank, **entry} for rank, entry in enumerate(entries, start=1)]


def display_key(text: str) -> str:
    """What `text` looks like, for telling names apart: compatibility forms folded
    (full-width letters), combining marks and invisible characters dropped, case folded,
    Cyrillic and Greek look-alikes read as the Latin letters they resemble, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(
        c
        for c in decomposed
        if unicodedata.category(c) not in _HIDDEN_CATEGORIES | {"Mn", "Me"} and c not in _BLANKS
    )
    return " ".join(kept.casefold().translate(_LOOKALIKES).split())


def clean_display_name(name: str | None, taken: set[str]) -> str | None:
    """A display name as stored (None: anonymous), or BadInput saying what to change.
    `taken`: the `display_key` of everyone else's name, id and display name, which a
    display name may not borrow."""
    if name is None or not name.strip():
        return None
    name = " ".join(unicodedata.normalize("NFKC", name).split())
    if printable(name) != name or any(
        unicodedata.category(c) in _HIDDEN_CATEGORIES or c in _BLANKS for c in name
    ):
        raise BadInput("a display name may hold no control or invisible characters.")
    if len(name) > MAX_DISPLAY_NAME:
        raise BadInput(f"a display name has at most {MAX_DISPLAY_NAME} characters.")
    key = display_key(name)
    if not key:
        raise BadInput("a display name needs a visible letter or digit.")
    if key in taken or key == ANONYMOUS:
        raise BadInput(f"{one_line(name)!r} is taken; choose another display name.")
    return name
