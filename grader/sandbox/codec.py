"""The wire format between the trusted grader and the sandboxed worker.

A message is a frame: an 12-byte prefix (JSON header length, total blob length), a JSON
header, then binary blobs. Values are JSON with tagged objects for what JSON lacks: arrays
and NumPy scalars (dtype, shape and memory order in the header, raw bytes as a blob), tuples,
dicts with any keys, non-finite floats, remote-object handles, callbacks, NumPy generators,
references to arguments (for syncing in-place changes back) and, from the trusted side only,
functions as source text to run in the worker. Nothing is ever unpickled, and only numeric
arrays are accepted, so a decoded value is always plain data.

The receiver bounds what a sender can make it do: a frame's size is checked from its prefix
before any of it is read, decoding stops at a number of values, of dict entries (keys whose
hashes collide make each insert cost as much as the dict is long), of blobs and of nesting,
each blob backs one array at most, and decoding counts against the reader's deadline. A write
with a deadline never blocks past it: a reader that stops reading costs the writer that
deadline, not forever.

This module has no grader imports: the worker loads it before any student code runs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import marshal
import math
import os
import re
import select
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PREFIX = struct.Struct(">IQ")
MARSHALLED = 1 << 31  # set in a prefix's header length: a marshal header (from the grader only)
MAX_HEADER_BYTES = 4 << 20  # the JSON part: Python values, tags and shapes; arrays are blobs
MAX_DEPTH = 64
MAX_NODES = 1_000_000  # values decoded from one message
MAX_DICT_ITEMS = 1024  # entries of one dict ...
MAX_MESSAGE_DICT_ITEMS = 16_384  # ... and of all dicts in one message
MAX_BLOBS = 65_536
MAX_METHODS = 4096  # method names a handle lists (others are still reached by attribute)
DEADLINE_EVERY = 4096  # values decoded between looks at the clock
READ_CHUNK = 1 << 16
PIPE_BYTES = 1 << 20  # Linux's limit for a user's pipe (/proc/sys/fs/pipe-max-size)
NUMERIC_KINDS = "biufc"
DTYPE_PATTERN = re.compile(r"[<>|=][biufc](1|2|4|8|16|32)")  # numeric dtypes only, by .str
_JSON_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))  # built once: hot path


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # the encoder sends non-finite floats tagged


_JSON_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
GENERATOR_KINDS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class ProtocolError(Exception):
    """The other side sent something that is not a valid message."""


class ChannelTimeout(Exception):
    """No complete message arrived before the deadline."""


class ChannelClosed(Exception):
    """The other side closed the pipe (for the worker: it died)."""


@dataclass(frozen=True)
class Handle:
    """A reference to an object that lives in the worker."""

    id: int
    cls: str
    methods: tuple[str, ...]


@dataclass(frozen=True)
class Callback:
    """A reference to a callable that lives in the trusted process."""

    id: int


@dataclass(frozen=True)
class Ref:
    """A reference to an argument the receiver already holds (identity across a call)."""

    id: int


class WorkerFunction:
    """A function of the trusted side that travels as its own source text and runs in the
    worker (see `grader.portable`, which builds them and vouches that `source` holds that
    function and nothing else); called here, it runs here."""

    __slots__ = ("function", "name", "source")

    def __init__(self, function: Callable[..., Any], name: str, source: str) -> None:
        self.function = function
        self.name = name
        self.source = source

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.name}, run in the worker when passed to it>"


@dataclass
class Encoder:
    """Turns values into a JSON tree plus blobs.

    `track` numbers every array, dict and list (the receiver numbers them the same way, so
    either side can refer back to them); `handle_for` is called for values that are not plain
    data (the worker registers them as remote objects); `callback_for` likewise for callables
    on the trusted side; `handle_of` recognises stand-ins of remote objects being sent back.
    """

    track: bool = False
    handle_for: Callable[[Any], Handle] | None = None
    callback_for: Callable[[Any], Callback] | None = None
    handle_of: Callable[[Any], Handle | None] | None = None
    refs: dict[int, Any] = field(default_factory=dict)
    blobs: list[bytes] = field(default_factory=list)
    _seen: dict[int, int] = field(default_factory=dict)

    def encode(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("value nested too deeply")
        kind = type(value)  # the plain types first, by exact type: this runs for every value
        if kind is str or kind is int or kind is bool or value is None:
            return value
        if kind is float:
            return value if math.isfinite(value) else {"$f": repr(value)}
        if kind is np.ndarray:
            return self._array_node(value)
        if kind is dict:
            return self._dict(value, depth)
        if kind is tuple:
            return {"$t": [self.encode(v, depth + 1) for v in value]}
        if kind is list:
            return self._list(value, depth)
        return self._other(value, depth)

    def _other(self, value: Any, depth: int) -> Any:
        """Everything but the plain types: tagged values, subclasses, handles, callables."""
        if isinstance(value, Ref):
            return {"$r": value.id}
        if isinstance(value, np.ndarray):
            return self._array_node(value)
        if isinstance(value, np.generic):
            return self._array("$s", np.asarray(value))
        if isinstance(value, np.random.Generator):
            return {"$g": self.encode(value.bit_generator.state, depth + 1)}
        if isinstance(value, int | float | str):
            return self.encode(_base_value(value), depth)
        if isinstance(value, Handle):
            return {"$h": value.id, "cls": value.cls, "methods": list(value.methods)}
        if isinstance(value, WorkerFunction):
            return {"$w": value.source, "name": value.name}
        handle = self.handle_of(value) if self.handle_of is not None else None
        if handle is not None:
            return self.encode(handle, depth)
        if self.callback_for is not None and callable(value):
            return {"$c": self.callback_for(value).id}
        if self.handle_for is not None:
            return self.encode(self.handle_for(value), depth)
        raise TypeError(f"cannot send a value of type {type(value).__name__}")

    def _array_node(self, value: np.ndarray) -> dict:
        if not self.track:
            return self._array("$a", value)
        seen = self._seen.get(id(value))
        if seen is not None:
            return {"$r": seen}
        ref = self._register(value)
        node = self._array("$a", value)
        node["id"] = ref
        return node

    def _list(self, value: list, depth: int) -> Any:
        if not self.track:
            return [self.encode(v, depth + 1) for v in value]
        seen = self._seen.get(id(value))
        if seen is not None:
            return {"$r": seen}
        ref = self._register(value)
        return {"$l": [self.encode(v, depth + 1) for v in value], "id": ref}

    def _dict(self, value: dict, depth: int) -> dict:
        if len(value) > MAX_DICT_ITEMS:
            raise ValueError(f"a dict of more than {MAX_DICT_ITEMS} entries cannot be sent")
        ref = None
        if self.track:
            seen = self._seen.get(id(value))
            if seen is not None:
                return {"$r": seen}
            ref = self._register(value)
        encode = self.encode
        node = {"$d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
        if ref is not None:
            node["id"] = ref
        return node

    def _register(self, value: Any) -> int:
        """Number a tracked value (before its contents: the receiver numbers them alike)."""
        ref = len(self.refs)
        self._seen[id(value)] = ref
        self.refs[ref] = value
        return ref

    def _array(self, tag: str, array: np.ndarray) -> dict:
        """The node of an array: its bytes go to a blob, the rest into the header."""
        plain = np.ndarray.view(array, np.ndarray) if type(array) is not np.ndarray else array
        blobs = self.blobs
        node = {tag: len(blobs), "dtype": _sendable_dtype(plain.dtype), "shape": list(plain.shape)}
        flags = plain.flags
        if flags.c_contiguous or not flags.f_contiguous:
            blobs.append(plain.tobytes())
        else:  # Fortran order travels as it lies in memory
            blobs.append(plain.tobytes("F"))
            node["order"] = "F"
        return node


_SENDABLE: dict[np.dtype, str] = {}  # dtype -> its `.str`, for the numeric dtypes seen so far


def _sendable_dtype(dtype: np.dtype) -> str:
    """The wire name of an array's dtype; TypeError for what only pickle could send."""
    text = _SENDABLE.get(dtype)
    if text is None:
        if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
            raise TypeError(f"cannot send an array of dtype {dtype}")
        text = dtype.str
        if len(_SENDABLE) < 64:  # numeric dtypes are few; dtypes with metadata could be many
            _SENDABLE[dtype] = text
    return text


def _base_value(value: Any) -> Any:
    """The plain value inside a subclass of int/float/str, so no override travels."""
    for base in (int, float, str):
        if isinstance(value, base):
            return base(value)
    raise TypeError(type(value).__name__)


@dataclass
class Decoder:
    """Turns a JSON tree plus blobs back into values, validating every node.

    `refs` collects the tracked arrays/dicts/lists in the sender's numbering; `resolve_ref`
    maps a `$r` node to an object this side already holds; `make_handle` and `make_callback`
    build the local stand-ins for remote objects and callables, and `make_function` (the
    worker's alone: the trusted side never runs code it receives) a function from the source
    text the trusted side sent. One decoder reads one
    message: its bounds (values, dict entries, one array per blob) and `deadline` (a
    `time.monotonic()` value; `ChannelTimeout` past it) hold across everything it decodes.
    """

    blobs: Sequence[bytes | memoryview]
    make_handle: Callable[[Handle], Any] | None = None
    make_callback: Callable[[Callback], Any] | None = None
    make_function: Callable[[str, str], Any] | None = None
    resolve_ref: Callable[[int], Any] | None = None
    deadline: float | None = None
    refs: dict[int, Any] = field(default_factory=dict)
    _nodes: int = 0
    _checkpoint: int = DEADLINE_EVERY
    _dict_items: int = 0
    _used_blobs: set[int] = field(default_factory=set)

    def decode(self, node: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ProtocolError("value nested too deeply")
        self._nodes += 1
        if self._nodes >= self._checkpoint:
            self._check_budget()
        kind = type(node)  # exact types: a JSON decoder makes no subclasses
        if kind is str or kind is int or kind is bool or node is None:
            return node
        if kind is dict and node:
            tag = next(iter(node))
            if tag == "$a":  # the commonest tag first, without a call per level
                return self._track(node, self._array(node, node[tag]))
            return self._tagged(node, tag, depth)
        if kind is list:
            return [self.decode(v, depth + 1) for v in node]
        if kind is float:
            if not math.isfinite(node):
                raise ProtocolError("untagged non-finite float")
            return node
        raise ProtocolError(f"unexpected node {kind.__name__}")

    def _tagged(self, node: dict, tag: str, depth: int) -> Any:
        body = node[tag]
        if tag == "$d":
            return self._dict(node, body, depth)
        if tag == "$t":
            return tuple(self._list(body, depth))
        if tag == "$r":
            return self._ref(body)
        if tag == "$f":
            if body not in ("nan", "inf", "-inf"):
                raise ProtocolError("bad float")
            return float(body)
        if tag == "$s":
            array = self._array(node, body)
            if array.shape != ():
                raise ProtocolError("scalar blob is not 0-d")
            return array[()]
        if tag == "$l":
            return self._track(node, self._list(body, depth))
        if tag == "$h":
            return self._handle(node)
        if tag == "$c":
            if self.make_callback is None or type(body) is not int:
                raise ProtocolError("unexpected callback")
            return self.make_callback(Callback(body))
        if tag == "$g":
            return _generator(self.decode(body, depth + 1))
        if tag == "$w":
            name = node.get("name")
            if self.make_function is None or type(body) is not str or type(name) is not str:
                raise ProtocolError("unexpected function")
            return self.make_function(name, body)
        raise ProtocolError(f"unknown tag {tag[:20]!r}")

    def _check_budget(self) -> None:
        """Every `DEADLINE_EVERY` values (and at `MAX_NODES`): the count and the clock."""
        if self._nodes > MAX_NODES:
            raise ProtocolError(f"more than {MAX_NODES:,} values in one message")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ChannelTimeout()
        self._checkpoint = min(self._nodes + DEADLINE_EVERY, MAX_NODES + 1)

    def _list(self, body: Any, depth: int) -> list:
        if not isinstance(body, list):
            raise ProtocolError("bad sequence")
        return [self.decode(v, depth + 1) for v in body]

    def _dict(self, node: dict, body: Any, depth: int) -> dict:
        """A dict, its size checked before any key is hashed (colliding keys cost n² to insert)."""
        if type(body) is not list:
            raise ProtocolError("bad dict")
        self._dict_items += len(body)
        if len(body) > MAX_DICT_ITEMS or self._dict_items > MAX_MESSAGE_DICT_ITEMS:
            raise ProtocolError(
                f"dicts of more than {MAX_DICT_ITEMS:,} entries (or {MAX_MESSAGE_DICT_ITEMS:,} "
                "in all) are not accepted"
            )
        result: dict = self._track(node, {})
        inner = depth + 1
        if inner > MAX_DEPTH and body:
            raise ProtocolError("value nested too deeply")
        decode = self.decode
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise ProtocolError("bad dict item")
            key, value = pair
            if type(key) is str:  # the usual key, counted as `decode` counts it
                self._nodes += 1
            else:
                key = decode(key, inner)
            try:
                result[key] = decode(value, inner)
            except TypeError as exc:
                raise ProtocolError("unhashable dict key") from exc
        return result

    def _track(self, node: dict, value: Any) -> Any:
        ref = node.get("id")
        if ref is None:
            return value
        refs = self.refs
        if not isinstance(ref, int) or ref in refs:
            raise ProtocolError("bad reference id")
        refs[ref] = value
        return value

    def _ref(self, body: Any) -> Any:
        if not isinstance(body, int):
            raise ProtocolError("bad reference")
        if body in self.refs:
            return self.refs[body]
        if self.resolve_ref is None:
            raise ProtocolError("unknown reference")
        return self.resolve_ref(body)

    def _handle(self, node: dict) -> Any:
        ident, cls, methods = node.get("$h"), node.get("cls"), node.get("methods")
        methods = methods[:MAX_METHODS] if isinstance(methods, list) else None
        valid = (
            self.make_handle is not None
            and isinstance(ident, int)
            and isinstance(cls, str)
            and methods is not None
            and all(isinstance(m, str) for m in methods)
        )
        if not valid:
            raise ProtocolError("bad handle")
        return self.make_handle(Handle(ident, cls[:200], tuple(methods)))

    def _array(self, node: dict, index: Any) -> np.ndarray:
        """The array a node describes, viewing its blob; every field checked first."""
        blobs = self.blobs
        if type(index) is not int or not 0 <= index < len(blobs):
            raise ProtocolError("bad blob index")
        used = self._used_blobs
        if index in used:
            raise ProtocolError("one blob sent for two arrays")
        used.add(index)
        dtype_text = node.get("dtype")
        if type(dtype_text) is not str:
            raise ProtocolError("bad array dtype")
        dtype = _numeric_dtype(dtype_text)
        shape = node.get("shape")
        if type(shape) is not list or len(shape) > MAX_DEPTH:
            raise ProtocolError("bad array shape")
        for n in shape:
            if type(n) is not int or n < 0:
                raise ProtocolError("bad array shape")
        order = node.get("order", "C")
        if order != "C" and order != "F":
            raise ProtocolError("bad array order")
        blob = blobs[index]
        if len(blob) != dtype.itemsize * math.prod(shape):
            raise ProtocolError("array data has the wrong length")
        try:  # numpy refuses some shapes the length check passes, e.g. [0, 10**30]
            if order == "C":
                array = np.ndarray(shape, dtype, blob)
            else:
                array = np.ndarray(shape, dtype, blob, order="F")
        except (ValueError, TypeError) as exc:
            raise ProtocolError(f"malformed array: {str(exc)[:100]}") from exc
        flags = array.flags
        if flags.aligned and flags.writeable and dtype.isnative:
            return array  # a view of this message's own buffer, which nothing else holds
        return array.astype(dtype.newbyteorder("="), order="K")  # a native, writable copy


@functools.lru_cache(maxsize=64)
def _numeric_dtype(text: str) -> np.dtype:
    """The dtype a sender named, if it is numeric (`.str` spelling: '<f8', '|b1', ...)."""
    if not DTYPE_PATTERN.fullmatch(text):
        raise ProtocolError(f"arrays of dtype {text[:20]!r} are not accepted")
    try:
        return np.dtype(text)
    except TypeError as exc:
        raise ProtocolError(f"unknown dtype {text!r}") from exc


def _generator(state: Any) -> np.random.Generator:
    if not isinstance(state, dict) or state.get("bit_generator") not in GENERATOR_KINDS:
        raise ProtocolError("bad generator state")
    bit_generator = getattr(np.random, state["bit_generator"])()
    try:
        bit_generator.state = state
    except Exception as exc:  # numpy's own checks, on plain data: huge ints overflow
        raise ProtocolError("bad generator state") from exc
    return np.random.Generator(bit_generator)


def pack(header: dict, blobs: list[bytes], *, marshalled: bool = False) -> bytes:
    """One frame: prefix, header (with the blob lengths), blobs, joined in one copy.

    The header is JSON, or with `marshalled` (the grader's requests to its worker: several
    times cheaper to write and to read) Python's marshal format, which only a receiver that
    trusts the sender may read (`unpack`): marshal is not safe against a hostile writer.
    """
    lengths = [len(b) for b in blobs]
    header = {**header, "blobs": lengths}
    if marshalled:
        text = marshal.dumps(header)
        size = len(text) | MARSHALLED
    else:
        text = _JSON_ENCODER.encode(header).encode()
        size = len(text)
    return b"".join([PREFIX.pack(size, sum(lengths)), text, *blobs])


def unpack(
    header_bytes: bytes | bytearray, blob_bytes: bytes | bytearray, *, marshalled: bool = False
) -> tuple[dict, list[memoryview]]:
    """Parse a frame's header and split its blobs (views, not copies), validating the lengths.
    `marshalled`: the header is marshal, which the caller has made sure only the trusted
    side can have written."""
    try:
        if marshalled:
            header = marshal.loads(header_bytes)
        else:
            header = _JSON_DECODER.decode(header_bytes.decode("utf-8"))
    except (ValueError, EOFError, TypeError, RecursionError) as exc:
        raise ProtocolError(f"header is not valid {'marshal' if marshalled else 'JSON'}") from exc
    if type(header) is not dict:
        raise ProtocolError("header is not an object")
    lengths = header.pop("blobs", None)
    if type(lengths) is not list:
        raise ProtocolError("bad blob table")
    if len(lengths) > MAX_BLOBS:
        raise ProtocolError(f"more than {MAX_BLOBS:,} blobs in one message")
    total = 0
    for n in lengths:
        if type(n) is not int or n < 0:
            raise ProtocolError("bad blob table")
        total += n
    if total != len(blob_bytes):
        raise ProtocolError("blob lengths do not add up")
    if not lengths:
        return header, []
    view = memoryview(blob_bytes)
    blobs, offset = [], 0
    for n in lengths:
        blobs.append(view[offset : offset + n])
        offset += n
    return header, blobs


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):,.4g} MB"


class Channel:
    """Frames over a pair of pipe file descriptors, with deadlines on reads and writes.

    A send with a deadline makes the write end non-blocking and waits on a full pipe with
    `poll`, so a reader that stops reading costs the writer that deadline. A received frame
    (header and blobs) may hold `max_bytes` at most, checked from its prefix before any of
    its body is read.
    """

    def __init__(self, read_fd: int, write_fd: int, max_bytes: int = 1 << 31) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._nonblocking = False
        _widen_pipe(write_fd)
        self._readable = select.poll()
        self._readable.register(read_fd, select.POLLIN)
        self._writable = select.poll()
        self._writable.register(write_fd, select.POLLOUT)

    def send(
        self,
        header: dict,
        blobs: list[bytes] = (),
        deadline: float | None = None,
        *,
        marshalled: bool = False,
    ) -> None:
        """Write one frame (one system call when the pipe has room for it); `ChannelTimeout`
        if the reader has not taken it by `deadline`. `marshalled`: see `pack` (the grader's
        side only)."""
        data = pack(header, list(blobs), marshalled=marshalled)
        if deadline is not None and not self._nonblocking:
            os.set_blocking(self.write_fd, False)
            self._nonblocking = True
        try:
            try:
                written = os.write(self.write_fd, data)
            except BlockingIOError:
                written = 0
            if written < len(data):
                self._write_rest(memoryview(data)[written:], deadline)
        except OSError as exc:
            raise ChannelClosed(str(exc)) from exc

    def _write_rest(self, data: memoryview, deadline: float | None) -> None:
        """The part of a frame the pipe had no room for, as the reader drains it."""
        while data:
            try:
                written = os.write(self.write_fd, data)
            except BlockingIOError:
                _wait(self._writable, deadline)
                continue
            data = data[written:]

    def recv(
        self, deadline: float | None = None, *, from_grader: bool = False
    ) -> tuple[dict, list[memoryview]]:
        """Read and parse one frame; `ChannelTimeout` if that is not done by `deadline`.
        `from_grader`: the other end is the trusted grader (this is the worker), whose
        frames may have marshal headers; anywhere else such a frame is refused unread."""
        buffer = self._buffer
        while len(buffer) < PREFIX.size:
            buffer += self._read_some(READ_CHUNK, deadline)
        header_len, blob_len = PREFIX.unpack_from(buffer)
        marshalled = header_len >= MARSHALLED
        if marshalled:
            if not from_grader:
                raise ProtocolError("a marshal header, which only the grader may send")
            header_len -= MARSHALLED
        size = header_len + blob_len
        if size > self.max_bytes:
            raise ProtocolError(
                f"a message of {_megabytes(size)}, more than the {_megabytes(self.max_bytes)} "
                "allowed"
            )
        if header_len > MAX_HEADER_BYTES:
            raise ProtocolError(
                f"a message header of {_megabytes(header_len)}, more than the "
                f"{_megabytes(MAX_HEADER_BYTES)} allowed"
            )
        if PREFIX.size + size <= READ_CHUNK:  # a small frame: all of it through the buffer
            end = PREFIX.size + header_len
            while len(buffer) < end + blob_len:
                buffer += self._read_some(READ_CHUNK, deadline)
            header, blobs = buffer[PREFIX.size : end], buffer[end : end + blob_len]
            del buffer[: end + blob_len]
        else:
            del buffer[: PREFIX.size]
            header = self._read(header_len, deadline)
            blobs = self._read(blob_len, deadline)
        message = unpack(header, blobs, marshalled=marshalled)
        if deadline is not None and time.monotonic() > deadline:
            raise ChannelTimeout()
        return message

    def _read(self, size: int, deadline: float | None) -> bytearray:
        """Exactly `size` bytes, in a buffer of their own: small reads go through the
        channel's buffer, large ones straight into one buffer of their size."""
        buffer = self._buffer
        if size <= READ_CHUNK or len(buffer) >= size:
            while len(buffer) < size:
                buffer += self._read_some(READ_CHUNK, deadline)
            data = buffer[:size]
            del buffer[:size]
            return data
        data = bytearray(size)
        filled = len(buffer)
        data[:filled] = buffer
        buffer.clear()
        view = memoryview(data)
        while filled < size:
            if deadline is not None:
                _wait(self._readable, deadline)
            try:
                got = os.readv(self.read_fd, [view[filled:]])
            except OSError as exc:
                raise ChannelClosed(str(exc)) from exc
            if not got:
                raise ChannelClosed("end of stream")
            filled += got
        return data

    def _read_some(self, limit: int, deadline: float | None) -> bytes:
        if deadline is not None:
            _wait(self._readable, deadline)
        try:
            chunk = os.read(self.read_fd, limit)
        except OSError as exc:
            raise ChannelClosed(str(exc)) from exc
        if not chunk:
            raise ChannelClosed("end of stream")
        return chunk


def _widen_pipe(fd: int) -> None:
    """Give a pipe room for a typical array in one write (Linux; elsewhere, or past the
    user's pipe allowance, it keeps its size): fewer wake-ups for both ends."""
    with contextlib.suppress(ImportError, AttributeError, OSError):
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _wait(poller: select.poll, deadline: float | None) -> None:
    """Until the poller's descriptor is ready (or hung up); `ChannelTimeout` at `deadline`."""
    while True:
        if deadline is None:
            timeout_ms = None
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout()
            timeout_ms = math.ceil(left * 1000)
        if poller.poll(timeout_ms):
            return
