"""The two kinds of failure the user sees: their input is wrong, or the grader is.

Everything a user can fix (unknown assignment, missing submission, corrupt zip) raises
`BadInput` (exit 2, one line). `GraderError` marks a bug in the grader or the course
content (exit 3). Problems in student code are neither: they become check results.
"""


class BadInput(Exception):
    """The user gave something the grader cannot use; the message says what and how to fix it."""


class GraderError(Exception):
    """The grader or the course content is broken; not the student's fault."""
