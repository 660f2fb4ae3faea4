"""Hostile workers on the wire: whatever a submission sends the grader is bounded in size and
in time, and every string in it is capped and escaped before a report sees it.

The submission reaches its channel to the grader the way any code in the worker can (the
`Channel` object is on the heap) and writes forged frames, or stops reading its requests.
Each attack must end in a check status and a small report, never in a stuck or bloated grader.
"""

from __future__ import annotations

import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from support import make_course
from test_hostile import by_name, graded, replace_function

from grader.course import load_course
from grader.report.json_report import to_json
from grader.runner import grade
from grader.sandbox.codec import ProtocolError, unpack
from grader.sandbox.limits import Limits
from grader.sandbox.proxy import (
    Sandbox,
    StudentError,
    StudentException,
    SubmissionProxy,
    WorkerCrashed,
    _refused_message,
)

FORGE = '''
import gc as _gc, json as _json, os as _os, struct as _struct, time as _time


def _channel():
    """The worker's channel to the grader, found the way any code in the worker can."""
    return next(o for o in _gc.get_objects() if type(o).__name__ == "Channel")


def _forge(header, blob_sizes=(), stream=0):
    """Write a frame as if the worker sent it, then `stream` bytes of its blobs; hang."""
    fd = _channel().write_fd
    _os.set_blocking(fd, True)
    text = _json.dumps({**header, "blobs": list(blob_sizes)}, separators=(",", ":")).encode()
    data = memoryview(_struct.pack(">IQ", len(text), sum(blob_sizes)) + text)
    while data:
        data = data[_os.write(fd, data):]
    chunk = bytes(1 << 20)
    while stream > 0:
        stream -= _os.write(fd, chunk[:stream])
    while True:
        _time.sleep(1)


def forge(header, blob_sizes=(), stream=0):
    _forge(header, blob_sizes, stream)


def forge_after(x, header, blob_sizes=()):
    """`forge`, in a call whose first argument (number 0) is `x`."""
    _forge(header, blob_sizes, sum(blob_sizes))


def forge_marshal(header):
    """A reply with a marshal header, the format only the grader's requests may use."""
    import marshal as _marshal
    fd = _channel().write_fd
    _os.set_blocking(fd, True)
    text = _marshal.dumps({**header, "blobs": []})
    _os.write(fd, _struct.pack(">IQ", len(text) | (1 << 31), 0) + text)
    while True:
        _time.sleep(1)


def forge_text(text, *blob_sizes, **general):
    """`forge`, of a header given as its JSON text, with zeroed blobs of these sizes; sent
    for a plain call, or for a general one when given keyword arguments."""
    fd = _channel().write_fd
    _os.set_blocking(fd, True)
    body = text.encode()
    data = _struct.pack(">IQ", len(body), sum(blob_sizes)) + body + bytes(sum(blob_sizes))
    data = memoryview(data)
    while data:
        data = data[_os.write(fd, data):]
    while True:
        _time.sleep(1)


def forge_long(size, **general):
    """`forge_text` of a result whose value is a text of `size` letters."""
    forge_text('{"op":"result","value":"' + "x" * size + '","sync":[],"blobs":[]}')


def stall():
    """Shrink the request pipe to one page, answer this call, and never read again."""
    import fcntl
    fcntl.fcntl(_channel().read_fd, 1031, 4096)  # F_SETPIPE_SZ
    _forge({"op": "result", "value": None})


def echo(x):
    return x
'''

REPORT_LIMIT = 300_000  # bytes of JSON report: a grade of a hostile submission stays small


def attack(body: str, prelude: str = ""):
    """A transform of the correct assignment1 submission whose AND runs `body` (after
    `prelude` ran at import, under the import's longer limit)."""
    replace = replace_function("AND", body)
    return lambda source: FORGE + "\n\n" + prelude + "\n\n" + replace(source)


def graded_attack(course, make_submission, body: str, prelude: str = "") -> dict:
    """Grade assignment1 with AND running `body`: the attacked checks fail, the others pass,
    and the report stays small. The checks by name."""
    result = graded(course, make_submission, attack(body, prelude))
    checks = by_name(result)
    for name in ("test_and_truth_table", "test_xor_truth_table"):
        assert checks[name].status in ("error", "timeout")
    assert checks["test_or_truth_table"].status == "passed"
    assert len(to_json(result).encode()) < REPORT_LIMIT
    return checks


def test_a_forged_reply_of_hash_colliding_dict_keys_is_refused(course, make_submission):
    keys = "_KEYS = [[k * (2**61 - 1), 0] for k in range(1, 100_001)]"  # all hash to 0
    body = "_forge({'op': 'result', 'value': {'$d': _KEYS}})"
    check = graded_attack(course, make_submission, body, keys)["test_and_truth_table"]
    assert check.status == "error"
    assert "entries" in check.message


def test_a_forged_error_reply_is_capped_and_escaped_before_the_report(course, make_submission):
    body = (
        "frame = ['perceptron.py', 1, 'AND', '\\x1b]52;c;aGk=\\x07' + 'c' * 1000]\n"
        "_forge({'op': 'error', 'type': 'Boom\\x1b[2J' + 'T' * 1000,\n"
        "        'message': '\\x1b]0;pwned\\x07' + 'm' * 2_000_000, 'frames': [frame] * 1000})"
    )
    check = graded_attack(course, make_submission, body)["test_and_truth_table"]
    assert check.status == "error"
    assert "Boom" in check.message
    for text in (check.message, check.details):
        assert "\x1b" not in text
        assert "\x07" not in text
        assert len(text) < 20_000
    assert check.details.count("perceptron.py, line 1") <= 8


def test_a_forged_reply_over_the_message_limit_is_refused_from_its_header(course, make_submission):
    body = (
        "_forge({'op': 'result', 'value': {'$a': 0, 'dtype': '|u1', 'shape': [1 << 30]}},\n"
        "      blob_sizes=[1 << 30], stream=64 << 20)"
    )
    check = graded_attack(course, make_submission, body)["test_and_truth_table"]
    assert check.status == "error"
    assert "a message of 1,024 MB, more than the 8 MB allowed" in check.message


def test_a_forged_error_reply_of_8_mb_is_refused(course, make_submission):
    body = "_forge({'op': 'error', 'type': 'E', 'message': 'm' * 8_000_000})"
    check = graded_attack(course, make_submission, body)["test_and_truth_table"]
    assert check.status == "error"
    assert "more than the 4 MB allowed" in check.message  # the JSON part's own cap


STALL_CHECKS = """
    import numpy as np
    import pytest

    @pytest.mark.points(5)
    def test_stall(student):
        student.stall()
        student.echo(np.zeros(1 << 20))

    @pytest.mark.points(5)
    def test_after(student):
        assert student.double(2) == 4
    """


def grade_stalling_worker(tmp_path: Path, **limits):
    student = FORGE + "\n\ndef double(x):\n    return x + x\n"
    course = load_course(make_course(tmp_path, STALL_CHECKS, student=student))
    toy = course.assignment("toy")
    return grade(
        "toy",
        tmp_path / "submission",
        course=course,
        device="cpu",
        limits=toy.limits.with_overrides(**limits),
    )


def test_a_worker_that_stops_reading_its_requests_times_out_the_call(tmp_path):
    result = grade_stalling_worker(tmp_path)
    stall, after = result.tests
    assert stall.status == "timeout"
    assert "did not finish within 2 s" in stall.message
    assert after.status == "passed"


def test_the_grades_time_limit_fires_while_a_request_cannot_be_written(tmp_path):
    result = grade_stalling_worker(tmp_path, call_timeout_s=600.0, total_timeout_s=4.0)
    stall, after = result.tests
    assert stall.status == "timeout"
    assert "the grade's time limit (4 s)" in stall.message
    assert after.status == "timeout"
    assert len(to_json(result).encode()) < REPORT_LIMIT


@pytest.fixture
def hostile(tmp_path: Path):
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "hostile.py").write_text(FORGE)
    box = Sandbox(folder, "hostile", Limits(call_timeout_s=2.0, max_message_mb=4))
    yield SubmissionProxy(box)
    box.close()


def test_a_forged_gigabyte_reply_is_refused_before_the_grader_reads_it(hostile):
    header = {"op": "result", "value": {"$a": 0, "dtype": "|u1", "shape": [1 << 30]}}
    tracemalloc.start()
    try:
        with pytest.raises(WorkerCrashed, match="more than the 4 MB allowed"):
            hostile.forge(header, [1 << 30], 64 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_a_reply_with_a_marshal_header_is_refused_unread(hostile):
    with pytest.raises(WorkerCrashed, match="only the grader may send"):
        hostile.forge_marshal({"op": "result", "value": 1})


ARRAY = {"$a": 0, "dtype": "<f8", "shape": [2]}


def test_a_change_reported_for_an_argument_the_check_did_not_name_is_dropped(hostile):
    """The grader asks about the arguments `inplace` names; a worker that reports on another
    (here zeroing x) changes nothing, and on a named one it reaches that one alone."""
    forged = {"op": "result", "value": None, "sync": [[0, ARRAY]]}
    x = np.ones(2)
    assert hostile.forge_after(x, forged, [16]) is None
    np.testing.assert_array_equal(x, [1.0, 1.0])
    hostile._sandbox._kill()  # the forging worker hangs; the next call starts another
    other = np.ones(2)
    with hostile.inplace(other):
        hostile.forge_after(x, forged, [16])
    np.testing.assert_array_equal(x, [1.0, 1.0])


def test_an_array_reported_as_its_bytes_alone_reaches_only_what_inplace_names(hostile):
    """A change sent as a blob's number (an array that kept the shape and dtype it was sent
    with) is held to the same rule as a whole array: dropped for an argument not named."""
    forged = {"op": "result", "value": None, "sync": [[0, 0]]}
    x = np.ones(2)
    assert hostile.forge_after(x, forged, [16]) is None
    np.testing.assert_array_equal(x, [1.0, 1.0])
    hostile._sandbox._kill()
    other = np.ones(2)
    with hostile.inplace(other):
        hostile.forge_after(x, forged, [16])
    np.testing.assert_array_equal(x, [1.0, 1.0])
    hostile._sandbox._kill()
    with hostile.inplace(x):
        hostile.forge_after(x, forged, [16])
    np.testing.assert_array_equal(x, [0.0, 0.0])  # named: the forged bytes (zeros) land


@pytest.mark.parametrize(
    ("argument", "size", "words"),
    [
        (np.ones(2), 8, "wrong length"),
        (np.ones(2), 24, "wrong length"),
        ({"w": np.ones(2)}, 16, "only an array"),
        ([np.ones(2)], 16, "only an array"),
    ],
    ids=["short", "long", "dict", "list"],
)
def test_bytes_alone_that_do_not_fit_the_array_sent_are_refused(hostile, argument, size, words):
    forged = {"op": "result", "value": None, "sync": [[0, 0]]}
    before = repr(argument)
    with hostile.inplace(argument), pytest.raises(WorkerCrashed, match=words):
        hostile.forge_after(argument, forged, [size])
    assert repr(argument) == before


@pytest.mark.parametrize(
    ("header", "blob_sizes", "words"),
    [
        ({"op": "result", "value": None, "sync": [[[1], 0]]}, [], "sync"),
        ({"op": "result", "value": {"$" + "x" * 100_000: 1}}, [], "unknown tag"),
        ({"op": "result", "value": [ARRAY, ARRAY]}, [16], "blob"),
        (
            {"op": "callback", "id": [1], "args": {"$t": []}, "kwargs": {"$d": []}},
            [],
            "callback id",
        ),
        ({"op": "result", "value": 1, "sync": [], "attrs": [["x", 1]]}, [], "attribute"),
    ],
    ids=[
        "unhashable-sync-id",
        "long-tag",
        "shared-blob",
        "unhashable-callback-id",
        "attributes-not-asked-for",
    ],
)
def test_malformed_replies_fail_the_call_with_a_short_message(hostile, header, blob_sizes, words):
    with pytest.raises(WorkerCrashed) as error:
        hostile.forge(header, blob_sizes, 16 * len(blob_sizes))
    assert words in error.value.message
    assert len(error.value.message) < 300


@pytest.mark.parametrize(
    "frames",
    [5, "text", {"a": 1}, [[1, 2]], [["p.py", "9" * 5000, None, ["x"]]], [["p.py", 2.5, "f", "c"]]],
)
def test_malformed_frames_in_an_error_reply_are_dropped_or_cleaned(frames):
    error = StudentException("f()", {"op": "error", "type": "ValueError", "message": "m",
                                     "frames": frames})  # fmt: skip
    assert error.message.startswith("f() raised ValueError: m")
    assert len(error.details) < 2000


def test_an_error_reply_keeps_the_last_frames_with_escaped_text():
    frames = [[f"p{i}.py", i, "f\x1b[2J", "code\x07" * 100] for i in range(1000)]
    reply = {"type": "E\u202e", "message": "\x1b]52;c;aGk=\x07" * 1000, "frames": frames}
    error = StudentException("f()", reply)
    assert len(error.frames) == 8
    assert error.frames[-1][0] == "p999.py"
    for text in (error.message, error.details):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert len(error.details) < 10_000


def test_handles_from_the_worker_name_a_safe_class_and_callable_methods(tmp_path):
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "shady.py").write_text(
        textwrap.dedent(
            """
            Shady = type("Sh\\x1b]0;x\\x07ady" + "y" * 5000, (), {"go": lambda self: 1})

            def make():
                return Shady()
            """
        )
    )
    box = Sandbox(folder, "shady", Limits(call_timeout_s=2.0))
    try:
        obj = SubmissionProxy(box).make()
        assert "\x1b" not in repr(obj) and len(repr(obj)) < 300
        assert obj.go() == 1
    finally:
        box.close()


def test_printed_output_reaches_the_grade_escaped(tmp_path):
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "loud.py").write_text("print('\\x1b]52;c;aGk=\\x07hello')\ndef f():\n    return 1\n")
    box = Sandbox(folder, "loud", Limits(call_timeout_s=2.0))
    assert SubmissionProxy(box).f() == 1
    box.close()
    text = box.output.text()
    assert "hello" in text
    assert "\x1b" not in text and "\x07" not in text


@pytest.mark.parametrize("value", [0, -1, "8", True])
def test_max_message_mb_must_be_a_positive_number(value):
    with pytest.raises(ValueError, match="max_message_mb"):
        Limits.from_mapping({"max_message_mb": value})


def _result(value: str, sync: str = "[]", blobs: str = "[]") -> str:
    return f'{{"op":"result","value":{value},"sync":{sync},"blobs":{blobs}}}'


# Replies a worker may forge to a call of plain values, and their blobs' sizes: each must end
# alike whether the call went as a plain call or a general one, and as the decoder reads it.
FORGED_REPLIES = {
    "int": (_result("1"), ()),
    "negative zero": (_result("-0.0"), ()),
    "text": (_result('"s\\u00e9\\ud800"'), ()),
    "true": (_result("true"), ()),
    "null": (_result("null"), ()),
    "list": (_result("[1, 2.5]"), ()),
    "untagged infinity": (_result("1e999"), ()),
    "untagged minus infinity": (_result("-1e999"), ()),
    "bare NaN": (_result("NaN"), ()),
    "tagged NaN": (_result('{"$f":"nan"}'), ()),
    "sync entry": (_result("1", sync="[[0, 1]]"), ()),
    "sync of text": (_result("1", sync='"x"'), ()),
    "sync of a dict": (_result("1", sync="{}"), ()),
    "no sync": ('{"op":"result","value":1,"blobs":[]}', ()),
    "no value": ('{"op":"result","sync":[],"blobs":[]}', ()),
    "wrong op": ('{"op":"results","value":1,"sync":[],"blobs":[]}', ()),
    "op twice": ('{"op":"result","value":1,"op":"error","type":"E","message":"m","blobs":[]}', ()),
    "extra entry": ('{"op":"result","value":1,"sync":[],"blobs":[],"x":2}', ()),
    "space first": (" " + _result("1"), ()),
    "blob missing": (_result("1", blobs="[1]"), ()),
    "blob unused": (_result("1", blobs="[4]"), (4,)),
    "blob table of text": (_result("1", blobs='"x"'), ()),
    "negative blob": (_result("1", blobs="[-1]"), ()),
    "numpy scalar": (_result('{"$s":0,"dtype":"<i8","shape":[]}', blobs="[8]"), (8,)),
    "handle": (_result('{"$h":0,"cls":"X","methods":["go"]}'), ()),
}


def _ending(action) -> tuple:
    """How a call ended: what it returned or raised, in words a comparison can use."""
    try:
        value = action()
    except StudentError as error:
        return ("raised", type(error).__name__, error.message)
    shown = repr(value) if len(repr(value)) < 200 else (len(value), hash(value))
    return ("returned", type(value).__name__, shown)


def _read_as_the_decoder_does(box: Sandbox, text: str, blob_sizes: tuple, label: str):
    """The reply read the general way: the frame's header and blobs, then `_read_reply`."""
    try:
        header, blobs = unpack(text.encode(), bytearray(sum(blob_sizes)))
    except ProtocolError as error:
        raise WorkerCrashed(_refused_message(label, error)) from None
    return box._read_reply(header, blobs, label, {}, time.monotonic() + 5)


@pytest.mark.parametrize(("text", "blob_sizes"), FORGED_REPLIES.values(), ids=FORGED_REPLIES)
def test_a_forged_reply_to_a_plain_call_ends_as_for_a_general_call(hostile, text, blob_sizes):
    box = hostile._sandbox
    plain = _ending(lambda: hostile.forge_text(text, *blob_sizes))
    box._kill()  # the forging worker hangs; the next call starts another
    general = _ending(lambda: hostile.forge_text(text, *blob_sizes, general=True))
    box._kill()
    decoded = _ending(lambda: _read_as_the_decoder_does(box, text, blob_sizes, "forge_text()"))
    assert plain == general == decoded


def test_a_forged_text_reply_is_taken_up_to_the_limit_and_refused_past_it_by_both_paths(hostile):
    for options in ({}, {"general": True}):
        assert hostile.forge_long(3 << 20, **options) == "x" * (3 << 20)
        hostile._sandbox._kill()
        with pytest.raises(WorkerCrashed, match="more than the 4 MB allowed"):
            hostile.forge_long(5 << 20, **options)
