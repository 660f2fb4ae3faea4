"""Where the grader meets a learning-management system: who handed in what, and grades in
the form an LMS imports.

Reading: `canvas` groups the flat files of Canvas's "Download Submissions" per student,
`gradescope_export` reads the `submission_metadata.yml` of Gradescope's "Export
Submissions", and `class_list` reads a roster (a Canvas gradebook export will do) that maps
submissions to student ids. Writing: `exports` writes Canvas's and Moodle's grade-import
CSVs. A `Person` is what any of them knows about one student.

Everything a student could have chosen (their name in an LMS, a file name) is hostile text:
it reaches people through `grader.safetext` and CSV files through `csv_cell`. Nothing here
grades or prints.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Person:
    """One student as an LMS knows them; any field may be empty.

    `canvas_id` is Canvas's user id (its gradebook's "ID" column, and the number in a bulk
    download's file names); `sis_user_id` is the institution's student id (Gradescope's
    "SID"); `identifier` is what a Moodle import matches users by (defaults to the email).
    """

    name: str = ""
    canvas_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    email: str = ""
    identifier: str = ""
