"""A hostile student against prefetched attributes (`grader.sandbox.prefetch`) and the codec's
zero-copy big arrays (`_bytes_view`, `Channel._write_parts`).

The worker's side may send along only what a plain read would return without running the
student's code; the grader's side takes only names it asked for, as data alone, never
aliasing what the check holds. A submission here either holds odd objects in its attributes,
changes them from a thread of its own after a call returned, or patches its worker's channel
(found on the heap, as `test_hostile_wire`'s FORGE does) so that the next reply carries
forged entries, and then serves on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_hostile_wire import FORGE

from grader.sandbox import codec
from grader.sandbox.limits import Limits
from grader.sandbox.prefetch import attributes_of, encode_attributes
from grader.sandbox.proxy import (
    RemoteObject,
    Sandbox,
    StudentError,
    StudentException,
    SubmissionProxy,
    WorkerCrashed,
)

STUDENT = '''
import threading as _threading
import time as _time2

import numpy as np


def _inject(text, arrays=()):
    """The next frame this worker sends (this call's reply) carries the JSON `text`'s entries
    too, and `arrays`' bytes as blobs after its own; the worker serves on as before."""
    channel = _channel()
    original = channel.send
    extra = _json.loads(text)
    added = [np.ascontiguousarray(a).tobytes() for a in arrays]

    def send(header, blobs=(), deadline=None, **options):
        del channel.send
        if isinstance(header, dict):
            header = {**header, **extra}
            blobs = [*blobs, *added]
        return original(header, blobs, deadline, **options)

    channel.send = send


class Box:
    def __init__(self):
        self.dW = 1.0
        self.db = 2.0

    def poke(self, x, text, arrays=()):
        _inject(text, arrays)

    def poke_value(self, text, arrays=()):
        _inject(text, arrays)
        return np.ones(2)

    def bump_and_poke(self, x, text):
        x += 1
        _inject(text)

    def poke_and_fail(self, text):
        _inject(text)
        raise ValueError("the student's own failure")

    def flood(self, n):
        _inject(_json.dumps({"attrs": [["dW", [0] * n]]}))

    def keep(self, x):
        x += 1
        self.dW = x
        self.db = {"x": x, "again": [x]}
        return x

    def nothing(self):
        return None


class Churn:
    """Changes its own attribute from a thread of its own after its calls return."""

    def __init__(self, n):
        self.n = n
        self.dW = np.zeros(n, np.uint8)
        self.stop = False

    def start(self):
        def run():
            value = 0
            while not self.stop:
                value ^= 1
                self.dW[:] = value  # in place, while a reply may be written from it
                self.dW = np.full(self.n, value, np.uint8)  # a new array
        _threading.Thread(target=run, daemon=True).start()

    def touch(self):
        _time2.sleep(0.001)
        return self.dW

    def halt(self):
        self.stop = True


class RaisingMeta(type):
    def __getattr__(cls, name):
        raise RuntimeError(f"the metaclass was asked for {name}")


class Marker(metaclass=RaisingMeta):
    """A class attribute that plain reads pass over: no __get__, no __set__."""


class Shadowed:
    dW = Marker()  # the instance's own dW shadows it

    def __init__(self):
        self.dW = 1.0

    def step(self):
        self.dW += 1.0
        return "stepped"


class OddDict:
    __dict__ = int.__dict__["real"]  # a getset descriptor, but not the instance dict's

    def __init__(self):
        self.dW = 1.0

    def step(self):
        self.dW += 1.0
        return "stepped"


class Liar:
    """Says it is a NumPy scalar; its value is the number of times it was turned into one."""

    __module__ = "numpy"
    turned = 0

    @property
    def __class__(self):
        return np.float64

    def __array__(self, *args, **kwargs):
        Liar.turned += 1
        return np.array(float(Liar.turned))


class Lying:
    def __init__(self):
        self.dW = Liar()

    def step(self):
        return None


class Notes:
    def __init__(self):
        self.note = "short"
        self.count = 1

    def grow(self, size):
        self.note = "n" * size
        return "grown"

    def count_up(self, digits):
        self.count = 10**digits
        return "counted"


_held = []


def hold(x):
    _held.append(x)


def held():
    return _held[-1]


def hold_answer(f):
    _held.append(f())


def echo(x):
    return x
'''


@pytest.fixture
def sandbox(tmp_path: Path):
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "attacks.py").write_text(FORGE + "\n\n" + STUDENT)
    box = Sandbox(folder, "attacks", Limits(call_timeout_s=5.0, max_message_mb=8))
    yield box
    box.close()


@pytest.fixture
def student(sandbox: Sandbox) -> SubmissionProxy:
    return SubmissionProxy(sandbox)


def learned(student: SubmissionProxy, *names: str) -> RemoteObject:
    """A Box whose class has had `names` read, so its method calls ask for them."""
    box = student.Box()
    for name in names:
        getattr(box, name)
    return box


def attrs(*entries: list) -> str:
    return json.dumps({"attrs": list(entries)})


ARRAY = {"$a": 0, "dtype": "<f8", "shape": [2]}


# -- forged replies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "blobs", "words"),
    [
        (attrs(["other", 1.0]), 0, "did not ask"),
        (attrs(["dW", 1.0], ["dW", 2.0]), 0, "did not ask"),
        (attrs(["dW", 1.0], ["db", 2.0], ["dW", 3.0]), 0, "attribute list"),
        (attrs(["dW", {"$h": 0, "cls": "Box", "methods": ["poke"]}]), 0, "handle"),
        (attrs(["dW", {"$r": 0}]), 0, "reference"),  # the check's argument x
        (attrs(["dW", {"$r": 1}]), 0, "reference"),  # the arrays list
        (attrs(["dW", {"$c": 0}]), 0, "callback"),
        (attrs(["dW", {"$w": "def f(): pass", "name": "f"}]), 0, "function"),
        (attrs(["dW", {"$a": 5, "dtype": "<f8", "shape": [2]}]), 1, "blob index"),
        (attrs(["dW", {"$a": 0, "dtype": "|O", "shape": [2]}]), 1, "dtype"),
        (attrs(["dW", {"$l": [ARRAY], "id": 0}], ["db", {"$l": [ARRAY], "id": 1}]), 1, "blob"),
        (attrs(["dW"]), 0, "entry"),
        (attrs(["dW", 1.0, 2.0]), 0, "entry"),
        (json.dumps({"attrs": {"dW": 1.0}}), 0, "attribute list"),
        (json.dumps({"attrs": "dW"}), 0, "attribute list"),
    ],
    ids=[
        "unasked",
        "twice",
        "too-many",
        "handle",
        "ref-to-argument",
        "ref-to-argument-list",
        "callback",
        "function",
        "bad-blob",
        "object-dtype",
        "one-blob-two-attributes",
        "short-entry",
        "long-entry",
        "dict",
        "text",
    ],
)
def test_forged_attributes_fail_the_call_and_change_nothing(student, text, blobs, words):
    box = learned(student, "dW", "db")
    x = np.arange(2.0)
    arrays = [np.ones(2)] * blobs
    with student.inplace(x), pytest.raises(WorkerCrashed) as error:
        box.poke(x, text, arrays)
    assert words in error.value.message
    assert len(error.value.message) < 400
    np.testing.assert_array_equal(x, [0.0, 1.0])
    with pytest.raises(StudentError, match="lost when the worker restarted"):
        box.dW  # noqa: B018 (the forging worker is gone, and its objects)


def test_attributes_sent_for_a_call_that_asked_for_none_are_refused(student):
    box = student.Box()  # nothing read yet: the call asks for nothing
    with pytest.raises(WorkerCrashed, match="attribute"):
        box.poke(np.ones(2), attrs(["dW", 1.0]))


def test_an_empty_or_null_attribute_list_is_no_attribute(student, sandbox):
    box = learned(student, "dW")
    box.poke(None, json.dumps({"attrs": []}))
    before = sandbox.requests
    assert box.dW == 1.0
    assert sandbox.requests == before + 1  # nothing came: read with a request
    box.poke(None, json.dumps({"attrs": None}))
    assert box.dW == 1.0


def test_a_forged_attribute_of_a_million_values_is_refused(student):
    box = learned(student, "dW")
    with pytest.raises(WorkerCrashed, match="values in one message"):
        box.flood(codec.MAX_NODES + 10)


def test_a_forged_attribute_may_not_share_a_blob_with_the_reply_value(student):
    box = learned(student, "dW")
    with pytest.raises(WorkerCrashed, match="one blob sent for two arrays"):
        box.poke_value(attrs(["dW", ARRAY]))  # the value's own array is blob 0


def test_a_forged_attribute_may_not_share_a_blob_with_a_sync_entry(student):
    box = learned(student, "dW")
    x = np.zeros(2)
    with student.inplace(x), pytest.raises(WorkerCrashed, match="one blob sent for two arrays"):
        box.bump_and_poke(x, attrs(["dW", ARRAY]))  # x's new bytes are blob 0
    np.testing.assert_array_equal(x, [0.0, 0.0])  # refused before anything was written


def test_attributes_on_an_error_reply_are_dropped(student, sandbox):
    box = learned(student, "dW")
    with pytest.raises(StudentException, match="the student's own failure"):
        box.poke_and_fail(attrs(["dW", 99.0]))
    before = sandbox.requests
    assert box.dW == 1.0  # the worker's own value, with a request
    assert sandbox.requests == before + 1


def test_attributes_are_held_for_the_called_object_alone(student, sandbox):
    first, second = learned(student, "dW"), student.Box()
    first.poke(None, attrs(["dW", 99.0]))
    before = sandbox.requests
    assert second.dW == 1.0
    assert sandbox.requests == before + 1  # a request: and it forgot what came for first
    assert first.dW == 1.0


def test_a_forged_attribute_is_taken_for_one_read_then_read_again(student, sandbox):
    box = learned(student, "dW")
    box.poke(None, attrs(["dW", 99.0]))  # the worker's word, as a read's reply would be
    before = sandbox.requests
    assert box.dW == 99.0
    assert box.dW == 1.0
    assert sandbox.requests == before + 1


@pytest.mark.parametrize(
    "entries",
    [
        [["dW", {**ARRAY, "id": 0}], ["db", {"$r": 0}]],
        [["dW", {"$l": [{**ARRAY, "id": 1}], "id": 0}], ["db", {"$t": [{"$r": 1}]}]],
    ],
    ids=["array", "inside-containers"],
)
def test_two_prefetched_attributes_never_share_an_object(student, entries):
    box = learned(student, "dW", "db")
    try:
        box.poke(None, attrs(*entries), [np.array([1.0, 2.0])])
    except WorkerCrashed:
        return  # refused: fine
    dW, db = box.dW, box.db
    arrays = [dW, db]
    dW_array, db_array = (a if isinstance(a, np.ndarray) else a[0] for a in arrays)
    dW_array[:] = -1.0  # the check's own copy of dW: db must not change with it
    np.testing.assert_array_equal(db_array, [1.0, 2.0])


# -- what an honest worker sends ----------------------------------------------------------


def test_prefetched_arrays_alias_neither_the_arguments_nor_the_value(student, sandbox):
    box = learned(student, "dW", "db")
    box.keep(np.zeros(2))
    box.dW, box.db  # noqa: B018 (both learned as data: an array, a dict)
    x = np.zeros(20_000)  # big: sent and sent back as views of memory
    with student.inplace(x):
        out = box.keep(x)
    before = sandbox.requests
    dW, db = box.dW, box.db
    assert sandbox.requests == before  # both came with keep's reply
    np.testing.assert_array_equal(x, 1.0)
    held = [x, out, dW, db["x"], db["again"][0]]
    for i, a in enumerate(held):
        for b in held[i + 1 :]:
            assert not np.shares_memory(a, b)
    dW[:] = 7.0
    db["x"][:] = 8.0
    np.testing.assert_array_equal(x, 1.0)
    np.testing.assert_array_equal(out, 1.0)
    np.testing.assert_array_equal(db["again"][0], 1.0)


def test_a_thread_changing_an_attribute_after_the_call_gives_whole_arrays(student, sandbox):
    n = 1 << 17  # 128 KB: written from the array's own memory
    churn = student.Churn(n)
    churn.dW  # noqa: B018 (learned)
    churn.start()
    try:
        for _ in range(40):
            value = churn.touch()
            for array in (value, churn.dW):
                assert isinstance(array, np.ndarray)
                assert array.dtype == np.uint8
                assert array.shape == (n,)
                assert set(np.unique(array).tolist()) <= {0, 1}
    finally:
        churn.halt()


def test_the_metaclass_of_a_class_attribute_may_not_turn_a_call_into_a_failure(student):
    """A plain read of `dW` never asks `Marker`'s metaclass anything (the instance's own
    entry wins, and Marker is no descriptor), and neither may a prefetch."""
    obj = student.Shadowed()
    assert obj.dW == 1.0  # learned: a plain read runs nothing of the student's
    assert obj.step() == "stepped"
    assert obj.dW == 2.0


def test_a_class_whose_dict_descriptor_is_not_its_instances_dict_loses_nothing(student):
    """A getset descriptor named __dict__ that does not apply to the object: plain reads of
    its attributes work as ever, and a call's reply must not fail because of it."""
    obj = student.OddDict()
    assert obj.dW == 1.0
    assert obj.step() == "stepped"
    assert obj.dW == 2.0


def test_an_object_that_claims_to_be_a_numpy_scalar_is_read_when_the_check_reads_it(
    student, sandbox
):
    """`Liar` converts to the count of its conversions: a read converts it once, so the
    check sees 1 then 2 whatever calls come between; a prefetch that converted it for each
    call's reply would show the count from the last call instead."""
    obj = student.Lying()
    assert obj.dW == 1.0
    obj.step()
    obj.step()
    assert obj.dW == 2.0


def test_a_learned_attribute_that_grew_big_does_not_fail_the_call(student, sandbox):
    notes = student.Notes()
    assert notes.note == "short"  # learned
    assert notes.grow(5 << 20) == "grown"


def test_a_learned_attribute_that_became_a_huge_int_does_not_fail_the_call(student):
    notes = student.Notes()
    assert notes.count == 1  # learned
    assert notes.count_up(5000) == "counted"


# -- the worker's checks, in process ------------------------------------------------------


class Plain:
    pass


def test_an_instance_dict_of_a_dict_subclass_sends_nothing():
    class Loud(dict):
        def __getitem__(self, key):
            raise AssertionError("ran")

    obj = Plain()
    obj.__dict__ = Loud(dW=np.ones(2))
    assert attributes_of(obj, ["dW"]) == []


def test_a_dict_property_sends_nothing_and_is_not_run():
    ran = []

    class Hidden:
        @property
        def __dict__(self):
            ran.append(1)
            return {"dW": 1.0}

    obj = Hidden()
    object.__setattr__(obj, "dW", 2.0)
    assert attributes_of(obj, ["dW"]) == []
    assert ran == []


def test_subclasses_of_arrays_and_numbers_stay_behind():
    class Tracked(np.ndarray):
        def __array_ufunc__(self, *args, **kwargs):
            raise AssertionError("ran")

    class Score(float):
        def __float__(self):
            raise AssertionError("ran")

    class Index(int):
        pass

    class Text(str):
        pass

    obj = Plain()
    obj.a = np.ndarray.__new__(Tracked, (2,))
    obj.b = Score(1.0)
    obj.c = Index(1)
    obj.d = Text("x")
    obj.e = {"w": Score(1.0)}
    obj.f = [np.ndarray.__new__(Tracked, (2,))]
    assert attributes_of(obj, list("abcdef")) == []


def test_a_numpy_scalar_subclass_stays_behind_and_is_not_run():
    ran = []

    class Sneaky(np.float64):
        __module__ = "numpy"

        def __array__(self, *args, **kwargs):
            ran.append(1)
            return np.array(5.0)

    obj = Plain()
    obj.x = Sneaky(1.0)
    blobs: list = []
    entries = encode_attributes(attributes_of(obj, ["x"]), blobs)
    decoded = [(n, codec.Decoder(blobs).decode(node)) for n, node in entries]
    assert decoded == []
    assert ran == []


def test_an_object_claiming_to_be_a_numpy_scalar_is_not_sent_and_not_run():
    ran = []

    class Liar:
        __module__ = "numpy"

        @property
        def __class__(self):
            ran.append("__class__")
            return np.float64

        def __array__(self, *args, **kwargs):
            ran.append("__array__")
            return np.array(7.0)

    obj = Plain()
    obj.x = Liar()
    encode_attributes(attributes_of(obj, ["x"]), [])
    assert ran == []


def test_a_class_attributes_metaclass_is_not_asked_anything():
    ran = []

    class Meta(type):
        def __getattr__(cls, name):
            ran.append(name)
            raise AttributeError(name)

    class Marker(metaclass=Meta):
        pass

    class Shadowed:
        dW = Marker()

    obj = Shadowed()
    obj.dW = 1.0
    assert attributes_of(obj, ["dW"]) == [("dW", 1.0)]
    assert ran == []


# -- the codec's big arrays ---------------------------------------------------------------


def test_a_big_argument_changed_after_the_call_stays_as_sent(student):
    x = np.arange(100_000.0)
    student.hold(x)
    x[:] = -1.0
    np.testing.assert_array_equal(student.held(), np.arange(100_000.0))


def test_a_big_callback_answer_changed_after_it_was_sent_stays_as_sent(student):
    answer = np.arange(100_000.0)
    student.hold_answer(lambda: answer)
    answer[:] = -1.0
    np.testing.assert_array_equal(student.held(), np.arange(100_000.0))


BIG = 1 << 14  # float64s: 128 KB


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.arange(BIG, dtype=float),
        lambda: np.asfortranarray(np.arange(BIG, dtype=float).reshape(128, -1)),
        lambda: np.arange(2 * BIG, dtype=float)[::2],
        lambda: np.arange(BIG, dtype=float)[::-1],
        lambda: np.arange(BIG, dtype=">f8"),
        lambda: np.arange(BIG, dtype=float).reshape(128, -1).T[:, :, None],
        lambda: np.broadcast_to(np.arange(128.0), (BIG // 16, 128)),
        lambda: np.arange(BIG * 8) % 2 == 0,
        lambda: np.arange(BIG, dtype=np.complex128),
        lambda: np.arange(BIG, dtype=float).reshape(1, BIG, 1)[:, :, :],
        lambda: np.frombuffer(np.arange(BIG, dtype=float).tobytes(), dtype=float),
        lambda: np.arange(BIG + 1, dtype=float).view(np.uint8)[1:-7].view(float),
    ],
    ids=[
        "c",
        "fortran",
        "strided",
        "reversed",
        "big-endian",
        "transposed-3d",
        "broadcast",
        "bool",
        "complex",
        "unit-dims",
        "read-only",
        "misaligned",
    ],
)
def test_big_arrays_of_any_layout_go_there_and_back_unchanged(student, make):
    x = make()
    expected = np.array(x, copy=True)
    back = student.echo(x)
    assert back.shape == expected.shape
    assert back.dtype.newbyteorder("=") == expected.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, expected)
    np.testing.assert_array_equal(x, expected)


def test_more_arrays_than_one_writev_takes_go_there_and_back(student):
    """Past IOV_MAX buffers and past the pipe's size: writes end mid-buffer and resume."""
    arrays = [np.full(300, i, dtype=float) if i % 3 else np.zeros(0) for i in range(2500)]
    arrays[7] = np.arange(200_000.0)  # one big view among them
    back = student.echo(arrays)
    assert len(back) == len(arrays)
    for a, b in zip(arrays, back, strict=True):
        np.testing.assert_array_equal(a, b)
