"""What may come along with a call's reply (`grader.sandbox.prefetch`): on the worker's side,
only what a plain read returns without running the student's code, as data, within bounds;
on the grader's side, only names it asked for, decoded as data alone."""

from __future__ import annotations

import numpy as np
import pytest

from grader.sandbox import prefetch
from grader.sandbox.codec import Decoder, Handle, ProtocolError
from grader.sandbox.prefetch import MISSING, Prefetch, attributes_of, encode_attributes


class Layer:
    def __init__(self) -> None:
        self.dW = np.ones(3)
        self.db = 2.0
        self.name = "affine"
        self.params = {"W": np.ones(2), "b": np.zeros(2)}
        self.shapes = [(2, 3), (3,)]
        self.other = object()

    @property
    def looked(self) -> int:
        return 1


class Score(float):
    def __repr__(self) -> str:  # an override that encoding a subclass could run
        raise AssertionError("ran")


def names(found: list[tuple[str, object]]) -> list[str]:
    return [name for name, _ in found]


def test_plain_data_in_the_instance_dict_comes_along():
    layer = Layer()
    found = attributes_of(layer, ["dW", "db", "name", "params", "shapes", "missing"])
    assert names(found) == ["dW", "db", "name", "params", "shapes"]


def test_objects_properties_and_subclasses_of_plain_types_stay_behind():
    layer = Layer()
    layer.__dict__["looked"] = 5  # shadowed by the property: a read runs the property
    layer.score = Score(1.0)
    layer.keyed = {1: np.ones(1)}
    layer.deep = [[[1.0]]]
    layer.long = list(range(prefetch.MAX_ITEMS + 1))
    found = attributes_of(layer, ["other", "looked", "score", "keyed", "deep", "long"])
    assert found == []


def test_classes_that_control_their_own_attribute_reads_send_nothing():
    class Slotted:
        __slots__ = ("dW",)

    class Intercepting:
        def __getattribute__(self, name: str) -> object:
            return object.__getattribute__(self, name)

    slotted, intercepting = Slotted(), Intercepting()
    slotted.dW = np.ones(2)
    intercepting.dW = np.ones(2)
    assert attributes_of(slotted, ["dW"]) == []
    assert attributes_of(intercepting, ["dW"]) == []


@pytest.mark.parametrize("names_sent", ["dW", [1], ["a"] * (prefetch.MAX_NAMES + 1)])
def test_a_malformed_prefetch_list_is_refused(names_sent):
    with pytest.raises(ProtocolError):
        attributes_of(Layer(), names_sent)


def test_arrays_past_the_byte_limit_are_left_for_a_read():
    blobs: list = [b"value"]
    big = np.zeros(prefetch.MAX_BYTES // 8 + 1)
    entries = encode_attributes([("db", 2.0), ("big", big), ("dW", np.ones(2))], blobs)
    assert [name for name, _ in entries] == ["db"]
    assert blobs == [b"value"]  # the big array's blob taken out again


def test_an_attribute_that_cannot_be_sent_is_skipped_and_its_blobs_dropped():
    blobs: list = []
    entries = encode_attributes([("objects", np.array([object()])), ("dW", np.ones(2))], blobs)
    assert [name for name, _ in entries] == ["dW"]
    assert len(blobs) == 1


def reply(node, blobs):
    """What `Prefetch.read` makes of `node` (dW asked for), after the reply's value: an
    array numbered 0 in blob 0."""
    decoder = Decoder(list(blobs), make_handle=lambda handle: handle)
    decoder.decode({"$a": 0, "dtype": "<f8", "shape": [1], "id": 0})
    return Prefetch.read(decoder, node, ("dW",))


ARRAY = {"$a": 1, "dtype": "<f8", "shape": [1]}


@pytest.mark.parametrize(
    "node",
    [
        [["db", 1.0]],  # not asked for
        [["dW", 1.0], ["dW", 2.0]],  # twice
        [["dW", {"$h": 1, "cls": "Layer", "methods": []}]],  # an object, not data
        [["dW", {"$r": 0}]],  # the reply's value (its array numbered 0)
        [["dW", 1.0], ["db", 2.0]],  # more entries than names asked for
        {"dW": 1.0},
        [["dW"]],
    ],
    ids=["unasked", "twice", "handle", "reference", "too-many", "not-a-list", "short-entry"],
)
def test_a_reply_bringing_anything_but_asked_for_data_is_refused(node):
    with pytest.raises(ProtocolError):
        reply(node, blobs=[bytes(8), bytes(8)])


def test_asked_for_data_is_kept_for_one_read_until_the_next_request():
    box = Prefetch()
    layer = Handle(3, "Layer", ("backward",))
    module = Handle(0, "module", ())
    assert box.wanted(layer) == ()
    box.learn(layer, "dW")
    box.learn(module, "CONSTANT")
    assert box.wanted(layer) == ("dW",)
    assert box.wanted(module) == ()
    found = reply([["dW", ARRAY]], blobs=[bytes(8), np.ones(1).tobytes()])
    box.keep(layer.id, found)
    assert box.take(Handle(4, "Layer", ()), "dW") is MISSING
    assert box.take(layer, "dW").tolist() == [1.0]
    assert box.take(layer, "dW") is MISSING
    box.keep(layer.id, found)
    box.forget()
    assert box.take(layer, "dW") is MISSING


def test_names_asked_for_are_bounded_per_class_and_in_classes():
    names, classes = Prefetch(), Prefetch()
    for i in range(prefetch.MAX_NAMES + 3):
        names.learn(Handle(1, "Layer", ()), f"a{i}")
    assert len(names.wanted(Handle(1, "Layer", ()))) == prefetch.MAX_NAMES
    handles = [Handle(1, f"Class{i}", ()) for i in range(prefetch.MAX_CLASSES + 3)]
    for handle in handles:
        classes.learn(handle, "x")
    assert sum(bool(classes.wanted(handle)) for handle in handles) == prefetch.MAX_CLASSES
