"""Attributes a check reads after a call, brought back with the call's reply.

A layer check calls `layer.backward(dout)` and then reads `layer.dW` and `layer.db`: three
round trips, where the last two only fetch what the first left behind. Once a check has read
an attribute of objects of some class, each later method call on an object of that class asks
the worker to send that attribute's value along with its reply (`Prefetch.wanted`), and a read
of it before the next request is answered from what came (`Prefetch.take`).

Nothing a check sees changes: nothing runs in the worker between a reply and the next request,
so the value is the one a request would have fetched; it is handed out once, as a fresh object
a request would have made, and every request forgets what is held. The worker sends only what
a plain read would return without running student code (an entry of the object's own
`__dict__`, no property or `__getattribute__` in the way: `attributes_of`) and only data
(arrays, numbers, strings, and small containers of them), within `MAX_BYTES`. The grader
takes only names it asked for, decoded as data alone: no handle, and no reference to the
reply's value or to the check's own arguments (`Prefetch.read`).
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

from grader.sandbox.codec import Decoder, Encoder, Handle, ProtocolError

MAX_NAMES = 8  # attribute names asked for per class
MAX_CLASSES = 64  # classes with names to ask for
MAX_BYTES = 1 << 20  # of arrays, per reply: a big attribute is fetched when it is read
MAX_ITEMS = 64  # entries of a dict, list or tuple sent along
MAX_TEXT = 64 << 10  # of header text (strings, numbers, array nodes), per reply
MAX_INT_BITS = 64  # a bigger int is fetched when it is read
_SCALARS = (float, bool, type(None))
_NUMPY_SCALARS = frozenset(np.dtype(code).type for code in "?bBhHiIlLqQefdgFDG")
_NODE_TEXT = 80  # header text of an array's node, about
MISSING = object()


class Prefetch:
    """The grader's side: which attributes to ask for, and what came for the next reads."""

    def __init__(self) -> None:
        self._names: dict[str, tuple[str, ...]] = {}  # class name -> attributes read
        self._held: dict[tuple[int, str], Any] = {}  # (handle id, name) -> value

    def wanted(self, handle: Handle) -> tuple[str, ...]:
        """The attributes to ask for with a call of a method of `handle`'s object (none for
        the module's functions: what they return is new)."""
        return self._names.get(handle.cls, ()) if handle.id else ()

    def learn(self, handle: Handle, name: str) -> None:
        """A check read `name` of `handle`'s object with a request: ask for it next time."""
        if not handle.id:
            return
        names = self._names.get(handle.cls)
        if names is None:
            if len(self._names) >= MAX_CLASSES:
                return
            names = ()
        if name not in names and len(names) < MAX_NAMES:
            self._names[handle.cls] = (*names, name)

    def take(self, handle: Handle, name: str) -> Any:
        """What came for `name` of `handle`'s object since the last request, once; else
        `MISSING`."""
        if not self._held:
            return MISSING
        return self._held.pop((handle.id, name), MISSING)

    def forget(self) -> None:
        """A request is being made (or the worker is gone): what came may be stale."""
        if self._held:
            self._held.clear()

    @staticmethod
    def read(decoder: Decoder, node: Any, asked: tuple[str, ...]) -> list[tuple[str, Any]]:
        """The attributes a reply brought, decoded as data alone: ProtocolError for any
        name not asked for, any handle, or any reference to what the reply's value or the
        check's arguments hold."""
        if node is None:
            return []
        if type(node) is not list or len(node) > len(asked):
            raise ProtocolError("bad attribute list")
        refs, make_handle, resolve_ref = decoder.refs, decoder.make_handle, decoder.resolve_ref
        decoder.refs, decoder.make_handle, decoder.resolve_ref = {}, None, None
        found: dict[str, Any] = {}
        try:
            for entry in node:
                if type(entry) is not list or len(entry) != 2:
                    raise ProtocolError("bad attribute entry")
                name, value = entry
                if type(name) is not str or name not in asked or name in found:
                    raise ProtocolError("an attribute the grader did not ask for")
                decoder.refs = {}  # each its own object: no entry refers to another
                found[name] = decoder.decode(value)
        finally:
            decoder.refs, decoder.make_handle, decoder.resolve_ref = refs, make_handle, resolve_ref
        return list(found.items())

    def keep(self, handle_id: int, attributes: list[tuple[str, Any]]) -> None:
        """Hold what a reply brought for the reads before the next request."""
        for name, value in attributes:
            self._held[(handle_id, name)] = value


# -- the worker's side ---------------------------------------------------------------------


def attributes_of(obj: Any, names: Any) -> list[tuple[str, Any]]:
    """Of `names`, those `getattr(obj, name)` would read straight from the object's own
    `__dict__` (no `__getattribute__` of the student's, no property or other data descriptor
    of that name on its class), holding data of exact built-in and NumPy types, within
    `MAX_TEXT` of header: reading them runs nothing the student wrote. The caller treats
    any exception (a student's thread changing a dict meanwhile) as nothing to send."""
    if type(names) is not list or len(names) > MAX_NAMES:
        raise ProtocolError("bad prefetch list")
    cls = type(obj)
    if _class_attribute(cls, "__getattribute__") is not object.__getattribute__:
        return []
    if type(_class_attribute(cls, "__dict__")) is not types.GetSetDescriptorType:
        return []  # no instance dict (__slots__), or one the student's class provides
    namespace = object.__getattribute__(obj, "__dict__")
    if type(namespace) is not dict:
        return []
    found = []
    text = 0
    for name in names:
        if type(name) is not str:
            raise ProtocolError("bad prefetch list")
        if name in namespace and not _data_descriptor(_class_attribute(cls, name)):
            value = namespace[name]
            size = _data_text(value, 0)
            if size is not None and text + size <= MAX_TEXT:
                text += size
                found.append((name, value))
    return found


def encode_attributes(attributes: list[tuple[str, Any]], blobs: list) -> list[list[Any]]:
    """`attributes` as a reply's entries, their arrays appended to the reply's `blobs`
    (those of an entry that cannot be sent, or past `MAX_BYTES`, taken out again)."""
    encoder = Encoder(blobs=blobs)
    entries = []
    start = len(blobs)
    for name, value in attributes:
        mark = len(blobs)
        try:
            node = encoder.encode(value)
        except (TypeError, ValueError):
            del blobs[mark:]
            continue
        if sum(len(blob) for blob in blobs[start:]) > MAX_BYTES:
            del blobs[mark:]
            break
        entries.append([name, node])
    return entries


def _class_attribute(cls: type, name: str) -> Any:
    """What lookup finds for `name` on `cls` and its bases (`MISSING` if nothing), read
    without any metaclass's code."""
    for klass in type.__getattribute__(cls, "__mro__"):
        attribute = type.__getattribute__(klass, "__dict__").get(name, MISSING)
        if attribute is not MISSING:
            return attribute
    return MISSING


def _data_descriptor(attribute: Any) -> bool:
    """Whether a class attribute overrides an instance's own of its name (a property),
    found as lookup finds `__set__` or `__delete__` on its type, without a metaclass's code."""
    kind = type(attribute)
    return (
        _class_attribute(kind, "__set__") is not MISSING
        or _class_attribute(kind, "__delete__") is not MISSING
    )


def _data_text(value: Any, depth: int) -> int | None:
    """About how much header text `value` takes if it is data that can come along: arrays,
    scalars (ints of `MAX_INT_BITS`), strings, and dicts (of string keys), lists and tuples of
    them, small and shallow; exact types, so that encoding them runs no override. None for
    anything else."""
    kind = type(value)
    if kind is np.ndarray or kind in _NUMPY_SCALARS:
        return _NODE_TEXT
    if kind in _SCALARS:
        return 24
    if kind is int:
        return 24 if value.bit_length() <= MAX_INT_BITS else None
    if kind is str:
        return len(value) + 2 if len(value) <= MAX_TEXT else None
    if depth >= 2 or kind not in (dict, list, tuple) or len(value) > MAX_ITEMS:
        return None
    total = 8
    if kind is dict:
        for key in value:
            if type(key) is not str or len(key) > MAX_TEXT:
                return None
            total += len(key) + 4
        value = value.values()
    for item in value:
        size = _data_text(item, depth + 1)
        if size is None:
            return None
        total += size
    return total
