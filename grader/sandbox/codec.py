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

import ast
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
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grader.sandbox.libc import keep_message_buffers

PREFIX = struct.Struct(">IQ")
MARSHALLED = 1 << 31  # set in a prefix's header length: a marshal header (from the grader only)
MARSHAL_VERSION = 2  # headers are trees: the later versions' shared references cost, not save
MAX_HEADER_BYTES = 4 << 20  # the JSON part: Python values, tags and shapes; arrays are blobs
MAX_DEPTH = 64
MAX_NODES = 1_000_000  # values decoded from one message
MAX_DICT_ITEMS = 1024  # entries of one dict ...
MAX_MESSAGE_DICT_ITEMS = 16_384  # ... and of all dicts in one message
MAX_BLOBS = 65_536
MAX_METHODS = 4096  # method names a handle lists (others are still reached by attribute)
DEADLINE_EVERY = 4096  # values decoded between looks at the clock
READ_CHUNK = 1 << 16
# Arrays at least this big travel as views of their own memory, and frames whose blobs add up
# to this much are written from their parts (`Channel.send`): copying a 6 MB array twice in
# a fresh worker (its bytes, then the frame) cost 3,000 page faults, about 15 ms.
VIEW_BYTES = 1 << 16
IOV_MAX = 1024  # buffers per writev (Linux's UIO_MAXIOV)
PIPE_BYTES = 1 << 20  # Linux's limit for a user's pipe (/proc/sys/fs/pipe-max-size)
MAX_SPIN_BACKOFF = 6  # a channel whose spins keep giving up spins once in 64 reads
NUMERIC_KINDS = "biufc"
DTYPE_PATTERN = re.compile(r"[<>|=][biufc](1|2|4|8|16|32)")  # numeric dtypes only, by .str
_JSON_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))  # built once: hot path
_ASCII_STRING = json.encoder.encode_basestring_ascii  # how that encoder writes a str


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # the encoder sends non-finite floats tagged


_JSON_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_JSON_SCAN = _JSON_DECODER.scan_once  # `decode` without its two whitespace matches
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
    function and nothing else); called here, it runs here. `free` names the variables it
    reads from the function that defined it: their values travel with it as data, read when
    it is sent (`closure`)."""

    __slots__ = ("free", "function", "name", "observer", "source")

    def __init__(
        self,
        function: Callable[..., Any],
        name: str,
        source: str,
        free: tuple[str, ...] = (),
        observer: Callable[..., Any] | None = None,
    ) -> None:
        self.function = function
        self.name = name
        self.source = source
        self.free = free
        self.observer = observer

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.observer is not None:
            self.observer(*args, **kwargs)
        return self.function(*args, **kwargs)

    def reporting_to(self, observer: Callable[..., Any]) -> WorkerFunction:
        """This function, run in the worker as before, with each call passed in a call to
        the student's code reported to `observer` here: its arguments (and what `inplace`
        names, as it was at that call), in order, before the call returns. What the student's
        code gets is what the function returns in the worker; `observer`'s return value is
        dropped and an exception it raises is raised when the call returns. The check's
        evidence, without a round trip per call. Called here, it tells `observer` first."""
        return WorkerFunction(self.function, self.name, self.source, self.free, observer)

    def closure(self) -> tuple[Any, ...]:
        """The values of `free` now, in its order; TypeError if one is not plain data (a
        callable, a container, an object with state) or not yet assigned."""
        values = []
        cells = getattr(self.function, "__closure__", None) or ()
        for name, cell in zip(self.free, cells, strict=True):
            try:
                value = cell.cell_contents
            except ValueError:
                raise TypeError(f"{self.name} reads {name} before it is assigned") from None
            if not is_data(value):
                raise TypeError(
                    f"{self.name} reads {name}, a {type(value).__name__}: a function that runs "
                    "in the worker may carry only numbers, strings, numeric arrays and tuples"
                )
            values.append(value)
        return tuple(values)

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
    observer_for: Callable[[Any], Callback] | None = None  # a worker function's observer
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
            return self._function(value, depth)
        handle = self.handle_of(value) if self.handle_of is not None else None
        if handle is not None:
            return self.encode(handle, depth)
        if self.callback_for is not None and callable(value):
            return {"$c": self.callback_for(value).id}
        if self.handle_for is not None:
            return self.encode(self.handle_for(value), depth)
        raise TypeError(f"cannot send a value of type {type(value).__name__}")

    def _function(self, value: WorkerFunction, depth: int) -> dict:
        """Its text, and the values it closes over as data (numbered like arguments, so one
        that is also an argument arrives as that argument)."""
        node: dict[str, Any] = {"$w": value.source, "name": value.name}
        if value.free:
            node["free"] = list(value.free)
            node["cells"] = [self.encode(v, depth + 1) for v in value.closure()]
        if value.observer is not None:
            # Numbered apart from callbacks: the worker may not have an observer called back
            # (its answer and what it raises would go to the worker), nor a callback observed.
            if self.observer_for is None:
                raise TypeError(f"{value.name} reports its calls: pass it in a call")
            node["report"] = self.observer_for(value.observer).id
        return node

    def _array_node(self, value: np.ndarray) -> dict:
        if not self.track:
            return self._array("$a", value)
        key = id(value)
        seen = self._seen.get(key)
        if seen is not None:
            return {"$r": seen}
        refs = self.refs  # numbered as `_register` numbers, without the call
        ref = len(refs)
        self._seen[key] = ref
        refs[ref] = value
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
        inner = depth + 1
        if inner > MAX_DEPTH and value:
            raise ValueError("value nested too deeply")
        encode, array_node = self.encode, self._array_node
        items = []
        for k, v in value.items():  # string keys and arrays (parameters) without a call each
            items.append(
                [
                    k if type(k) is str else encode(k, inner),
                    array_node(v) if type(v) is np.ndarray else encode(v, inner),
                ]
            )
        node = {"$d": items}
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
        dtype = plain.dtype
        text = _SENDABLE.get(dtype)
        if text is None:
            text = _sendable_dtype(dtype)
        node = {tag: len(blobs), "dtype": text, "shape": list(plain.shape)}
        if plain.flags.c_contiguous or not plain.flags.f_contiguous:
            big = plain.nbytes >= VIEW_BYTES and plain.flags.c_contiguous
            blobs.append(_bytes_view(plain) if big else plain.tobytes())
        else:  # Fortran order travels as it lies in memory
            big = plain.nbytes >= VIEW_BYTES
            blobs.append(_bytes_view(plain.T) if big else plain.tobytes("F"))
            node["order"] = "F"
        return node


def _bytes_view(array: np.ndarray) -> np.ndarray:
    """A C-contiguous array's bytes as a flat uint8 view of its memory, not a copy: a blob
    the frame is written from before anything runs that could change it (`Channel.send`)."""
    return array.reshape(-1).view(np.uint8)


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


def is_data(value: Any, depth: int = 0) -> bool:
    """Whether `value` is what a worker function may carry: None, a number, a string, a
    numeric array or NumPy scalar, or a tuple of those (exact types: no subclass with
    behaviour of its own)."""
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is float or kind is str:
        return True
    if kind is np.ndarray or isinstance(value, np.generic):
        return value.dtype.kind in NUMERIC_KINDS and value.dtype.fields is None
    if kind is tuple:
        return depth < 8 and all(is_data(v, depth + 1) for v in value)
    return False


FUNCTION_MAKER = "__grader_make__"
# A check file imports them, and the compiler calls an imported module's functions
# differently: the text is compiled after the same imports, so the code is the same.
IMPORTS = "import math\nimport numpy\nimport numpy as np\n"


def define_function(
    name: str, source: str, free: tuple[str, ...], namespace: dict[str, Any]
) -> Callable[..., Any]:
    """What a worker function's text defines when run in `namespace`, made the same way on
    both sides (`grader.portable` to vouch for it, the worker to run it): a maker that takes
    the values of `free`, in its order, and returns the function. ValueError unless the text
    defines `name`."""
    if not all(type(n) is str and n.isidentifier() for n in (name, *free)):
        raise ValueError("a function's name and the names it closes over must be identifiers")
    if free:
        maker = _closure_maker(name, source, free, namespace)
    else:  # the usual case, compiled from text (a fifth of the time of the tree below)
        exec(compile(IMPORTS + source, f"<grader's {name}>", "exec"), namespace)
        function = namespace.pop(name, None)
        defined = isinstance(function, types.FunctionType) and function.__name__ == name
        maker = functools.partial(_itself, function) if defined else None
    if maker is None:
        raise ValueError(f"the text sent for {name!r} does not define it")
    return maker


def _itself(function: Callable[..., Any]) -> Callable[..., Any]:
    return function


def _closure_maker(
    name: str, source: str, free: tuple[str, ...], namespace: dict[str, Any]
) -> Callable[..., Any] | None:
    """The text's one definition nested in a maker whose parameters are `free`, so the
    function reads them as the check's function does (built as a tree: indenting the text
    would change its multi-line strings)."""
    *imports, definition = ast.parse(IMPORTS + source).body
    if len(imports) != 3 or not isinstance(definition, ast.FunctionDef) or definition.name != name:
        return None
    maker = ast.FunctionDef(
        name=FUNCTION_MAKER,
        args=ast.arguments(
            posonlyargs=[],
            args=[ast.arg(arg=n) for n in free],
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[],
        ),
        body=[definition, ast.Return(ast.Name(name, ast.Load()))],
        decorator_list=[],
    )
    module = ast.Module(body=[*imports, maker], type_ignores=[])
    exec(compile(ast.fix_missing_locations(module), f"<grader's {name}>", "exec"), namespace)
    return namespace.pop(FUNCTION_MAKER)


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
    text the trusted side sent, with the names and decoded values it closes over. One
    decoder reads one message: its bounds (values, dict entries, one array per blob) and
    `deadline` (a `time.monotonic()` value; `ChannelTimeout` past it) hold across everything
    it decodes.
    """

    blobs: Sequence[bytes | memoryview]
    make_handle: Callable[[Handle], Any] | None = None
    make_callback: Callable[[Callback], Any] | None = None
    make_function: Callable[[str, str, tuple[str, ...], list, int | None], Any] | None = None
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
                array = self._array(node, node[tag])
                return array if "id" not in node else self._track(node, array)
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
            return self._function(node, body, depth)
        raise ProtocolError(f"unknown tag {tag[:20]!r}")

    def _function(self, node: dict, body: Any, depth: int) -> Any:
        name, free, cells = node.get("name"), node.get("free", []), node.get("cells", [])
        if self.make_function is None or type(body) is not str or type(name) is not str:
            raise ProtocolError("unexpected function")
        if type(free) is not list or type(cells) is not list or len(free) != len(cells):
            raise ProtocolError("bad function closure")
        if not all(type(n) is str and n.isidentifier() for n in free):
            raise ProtocolError("bad function closure")
        report = node.get("report")
        if report is not None and type(report) is not int:
            raise ProtocolError("bad function observer")
        values = [self.decode(v, depth + 1) for v in cells]
        return self.make_function(name, body, tuple(free), values, report)

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
        decode, refs = self.decode, self.refs
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise ProtocolError("bad dict item")
            key, value = pair
            if type(key) is str:  # the usual key, counted as `decode` counts it
                self._nodes += 1
            else:
                key = decode(key, inner)
            try:
                if type(value) is dict and value and next(iter(value)) == "$a":
                    # An array (of parameters, of gradients) without a call to `decode`,
                    # counted and numbered as it counts and `_track` numbers one.
                    self._nodes += 1
                    if self._nodes >= self._checkpoint:
                        self._check_budget()
                    result[key] = array = self._array(value, value["$a"])
                    ref = value.get("id")
                    if ref is not None:
                        if not isinstance(ref, int) or ref in refs:
                            raise ProtocolError("bad reference id")
                        refs[ref] = array
                else:
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
        blob = self._take_blob(index)
        dtype_text = node.get("dtype")
        layout = _DTYPES.get(dtype_text) if type(dtype_text) is str else None
        if layout is None:
            if type(dtype_text) is not str:
                raise ProtocolError("bad array dtype")
            layout = _numeric_dtype(dtype_text)
        dtype, size, native = layout
        shape = node.get("shape")
        if type(shape) is not list or len(shape) > MAX_DEPTH:
            raise ProtocolError("bad array shape")
        for n in shape:
            if type(n) is not int or n < 0:
                raise ProtocolError("bad array shape")
            size *= n
        order = node.get("order", "C")
        if order != "C" and order != "F":
            raise ProtocolError("bad array order")
        if len(blob) != size:
            raise ProtocolError("array data has the wrong length")
        try:  # numpy refuses some shapes the length check passes, e.g. [0, 10**30]
            if order == "C":
                array = np.ndarray(shape, dtype, blob)
            else:
                array = np.ndarray(shape, dtype, blob, order="F")
        except (ValueError, TypeError) as exc:
            raise ProtocolError(f"malformed array: {str(exc)[:100]}") from exc
        if native and array.flags.behaved:  # aligned and writeable
            return array  # a view of this message's own buffer, which nothing else holds
        return array.astype(dtype.newbyteorder("="), order="K")  # a native, writable copy

    def _take_blob(self, index: Any) -> bytes | memoryview:
        """Blob `index`, which no other array of this message may use."""
        if type(index) is not int or not 0 <= index < len(self.blobs):
            raise ProtocolError("bad blob index")
        if index in self._used_blobs:
            raise ProtocolError("one blob sent for two arrays")
        self._used_blobs.add(index)
        return self.blobs[index]

    def bare_array(self, like: Any, index: Any) -> np.ndarray:
        """Blob `index` read as an array of `like`'s shape and dtype (in this machine's byte
        order): how a receiver gets back an array it sent that kept its shape and dtype, whose
        bytes are then all there is to check. The view is for copying from, not to keep."""
        if not isinstance(like, np.ndarray):
            raise ProtocolError("only an array can come back as its bytes alone")
        blob = self._take_blob(index)
        self._nodes += 1
        if self._nodes >= self._checkpoint:
            self._check_budget()
        if len(blob) != like.nbytes:
            raise ProtocolError("array data has the wrong length")
        dtype = like.dtype
        return np.ndarray(like.shape, dtype if dtype.isnative else dtype.newbyteorder("="), blob)


_DTYPES: dict[str, tuple[np.dtype, int, bool]] = {}  # wire name -> (dtype, itemsize, native)


def _numeric_dtype(text: str) -> tuple[np.dtype, int, bool]:
    """The dtype a sender named, if it is numeric (`.str` spelling: '<f8', '|b1', ...), with
    its item size and whether it is in this machine's byte order; remembered in `_DTYPES`."""
    if not DTYPE_PATTERN.fullmatch(text):
        raise ProtocolError(f"arrays of dtype {text[:20]!r} are not accepted")
    try:
        dtype = np.dtype(text)
    except TypeError as exc:
        raise ProtocolError(f"unknown dtype {text!r}") from exc
    layout = (dtype, dtype.itemsize, dtype.isnative)
    if len(_DTYPES) < 64:  # the pattern admits a few dozen names at most
        _DTYPES[text] = layout
    return layout


def _generator(state: Any) -> np.random.Generator:
    if not isinstance(state, dict) or state.get("bit_generator") not in GENERATOR_KINDS:
        raise ProtocolError("bad generator state")
    bit_generator = getattr(np.random, state["bit_generator"])()
    try:
        bit_generator.state = state
    except Exception as exc:  # numpy's own checks, on plain data: huge ints overflow
        raise ProtocolError("bad generator state") from exc
    return np.random.Generator(bit_generator)


def pack(header: dict | tuple, blobs: list[bytes], *, marshalled: bool = False) -> bytes:
    """One frame: prefix, header (with the blob lengths), blobs, joined in one copy.

    The header is JSON, or with `marshalled` (the grader's requests to its worker: several
    times cheaper to write and to read) Python's marshal format, which only a receiver that
    trusts the sender may read (`unpack`): marshal is not safe against a hostile writer.

    A tuple header, `(target, name, args)`, is a plain call: the grader's commonest request,
    a call of `name` of the worker's object number `target` (the object itself for None)
    whose arguments are all `plain` values, which the worker runs as they arrive (nothing to
    decode); it is marshalled and has no blobs.
    """
    if type(header) is tuple:
        text = marshal.dumps(header, MARSHAL_VERSION)
        return PREFIX.pack(len(text) | MARSHALLED, 0) + text
    return b"".join([frame_head(header, [len(b) for b in blobs], marshalled=marshalled), *blobs])


def frame_head(header: dict, lengths: list[int], *, marshalled: bool = False) -> bytes:
    """A frame's prefix and header, given its blobs' `lengths`: what `pack` puts before the
    blobs."""
    header = {**header, "blobs": lengths}
    if marshalled:
        text = marshal.dumps(header, MARSHAL_VERSION)
        size = len(text) | MARSHALLED
    else:
        text = _JSON_ENCODER.encode(header).encode()
        size = len(text)
    return PREFIX.pack(size, sum(lengths)) + text


def plain(values: tuple) -> bool:
    """Whether every value is one JSON carries as itself: an exact int, bool or str, None,
    or a finite float (subclasses and everything else go through `Encoder`)."""
    for value in values:
        kind = type(value)
        if kind is int or kind is str or kind is bool or value is None:
            continue
        if kind is not float or not math.isfinite(value):
            return False
    return True


def scalar_reply(value: Any) -> bytes | None:
    """The whole frame of a result that is one `plain` value and changed no argument,
    written without building the header (byte for byte what `pack` makes of it); None for
    any other value."""
    kind = type(value)
    if kind is int:
        text = repr(value)  # ValueError past 4300 digits, as in json's own encoder
    elif kind is str:
        text = _ASCII_STRING(value)
    elif value is None:
        text = "null"
    elif kind is bool:
        text = "true" if value else "false"
    elif kind is float and math.isfinite(value):
        text = repr(value)
    else:
        return None
    body = b"".join((_RESULT_HEAD, text.encode(), _RESULT_TAIL))
    return PREFIX.pack(len(body), 0) + body


_RESULT_HEAD = b'{"op":"result","value":'  # a result's header, as `pack` writes it, before
_RESULT_TAIL = b',"sync":[],"blobs":[]}'  # and after its value, when it changed nothing


def unpack(
    header_bytes: bytes | bytearray, blob_bytes: bytes | bytearray, *, marshalled: bool = False
) -> tuple[dict | tuple, list[memoryview]]:
    """Parse a frame's header and split its blobs (views, not copies), validating the lengths.
    `marshalled`: the header is marshal, which the caller has made sure only the trusted
    side can have written; a tuple there is a plain call (see `pack`), which has no blobs."""
    try:
        if marshalled:
            header = marshal.loads(header_bytes)
            if type(header) is tuple:
                if blob_bytes:
                    raise ProtocolError("blob lengths do not add up")
                return header, []
        else:
            header = _json_header(header_bytes)
    except (ValueError, EOFError, TypeError, RecursionError) as exc:
        raise ProtocolError(f"header is not valid {'marshal' if marshalled else 'JSON'}") from exc
    if type(header) is not dict:
        raise ProtocolError("header is not an object")
    lengths = header.pop("blobs", None)
    if type(lengths) is not list:
        raise ProtocolError("bad blob table")
    if not lengths:  # the usual reply: no arrays
        if blob_bytes:
            raise ProtocolError("blob lengths do not add up")
        return header, []
    if len(lengths) > MAX_BLOBS:
        raise ProtocolError(f"more than {MAX_BLOBS:,} blobs in one message")
    total = 0
    for n in lengths:
        if type(n) is not int or n < 0:
            raise ProtocolError("bad blob table")
        total += n
    if total != len(blob_bytes):
        raise ProtocolError("blob lengths do not add up")
    view = memoryview(blob_bytes)
    blobs, offset = [], 0
    for n in lengths:
        blobs.append(view[offset : offset + n])
        offset += n
    return header, blobs


def _json_header(data: bytes | bytearray) -> Any:
    """`_JSON_DECODER.decode(data.decode("utf-8"))`: the same value or the same error, read
    faster where it can be. A header that starts and ends with its value (as every encoder
    here writes it) is read by the C scanner alone, and a reply of one value that changed
    nothing, the commonest (`scalar_reply`), is read as that value between the fixed text
    around it: if the text between is one whole JSON value, the header is that object with
    those four entries. Anything else, whitespace around the value included, goes through
    `decode`."""
    if data.startswith(_RESULT_HEAD) and data.endswith(_RESULT_TAIL):
        try:
            text = data[len(_RESULT_HEAD) : -len(_RESULT_TAIL)].decode("utf-8")
            value, end = _JSON_SCAN(text, 0)
        except Exception:  # decode says why, in its own words
            pass
        else:
            if end == len(text):
                return {"op": "result", "value": value, "sync": [], "blobs": []}
    text = data.decode("utf-8")
    try:
        value, end = _JSON_SCAN(text, 0)
    except Exception:  # StopIteration, a refused constant, too deep: decode says which
        return _JSON_DECODER.decode(text)
    if end != len(text):
        return _JSON_DECODER.decode(text)
    return value


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
        self.received = 0  # the size of the last frame `recv` read, prefix included
        self._nonblocking = False
        self.spin_s = 0.0  # how long a read polls awake before it sleeps (`_spin`)
        self._spin_misses = 0  # spins in a row that gave up (`_missed`)
        self._spin_skips = 0  # reads left that go straight to sleep after them
        _widen_pipe(write_fd)
        keep_message_buffers()
        self._readable = select.poll()
        self._readable.register(read_fd, select.POLLIN)
        self._writable = select.poll()
        self._writable.register(write_fd, select.POLLOUT)

    def send(
        self,
        header: dict | tuple,
        blobs: list[bytes] = (),
        deadline: float | None = None,
        *,
        marshalled: bool = False,
    ) -> None:
        """Write one frame (one system call when the pipe has room for it); `ChannelTimeout`
        if the reader has not taken it by `deadline`. `marshalled`: see `pack` (the grader's
        side only). Blobs that add up to `VIEW_BYTES` are written from where they lie
        (arrays' own memory among them), without joining them into one copy first."""
        if type(header) is tuple:
            self.write(pack(header, [], marshalled=marshalled), deadline)
            return
        lengths = [len(b) for b in blobs]
        head = frame_head(header, lengths, marshalled=marshalled)
        if sum(lengths) < VIEW_BYTES:
            self.write(b"".join([head, *blobs]), deadline)
        else:
            self._write_parts([head, *blobs], deadline)

    def write(self, data: bytes, deadline: float | None = None) -> None:
        """Write a frame made by `pack` (or `scalar_reply`), as `send` does."""
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

    def _write_parts(self, parts: list, deadline: float | None) -> None:
        """Write buffers one after another with as few system calls as the pipe allows."""
        if deadline is not None and not self._nonblocking:
            os.set_blocking(self.write_fd, False)
            self._nonblocking = True
        pending = [memoryview(part).cast("B") for part in parts if len(part)]
        first = 0
        try:
            while first < len(pending):
                try:
                    written = os.writev(self.write_fd, pending[first : first + IOV_MAX])
                except BlockingIOError:
                    _wait(self._writable, deadline)
                    continue
                while written:
                    size = len(pending[first])
                    if written < size:
                        pending[first] = pending[first][written:]
                        break
                    written -= size
                    first += 1
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
    ) -> tuple[dict | tuple, list[memoryview]]:
        """Read and parse one frame; `ChannelTimeout` if that is not done by `deadline`.
        `from_grader`: the other end is the trusted grader (this is the worker), whose
        frames may have marshal headers (a tuple one is a plain call: see `pack`); anywhere
        else such a frame is refused unread."""
        buffer = self._buffer
        if not buffer:  # the usual case: one read brings exactly one small frame
            chunk = self._read_some(READ_CHUNK, deadline)
            size = len(chunk)
            if size >= PREFIX.size:
                header_len, blob_len, marshalled = self._frame_size(chunk, from_grader)
                end = PREFIX.size + header_len
                if end + blob_len == size:
                    self.received = size
                    # The blobs in a buffer of their own: arrays decoded from them view it.
                    blobs = bytearray(memoryview(chunk)[end:]) if blob_len else b""
                    message = unpack(chunk[PREFIX.size : end], blobs, marshalled=marshalled)
                    if deadline is not None and time.monotonic() > deadline:
                        raise ChannelTimeout()
                    return message
            buffer += chunk
        while len(buffer) < PREFIX.size:
            buffer += self._read_some(READ_CHUNK, deadline)
        header_len, blob_len, marshalled = self._frame_size(buffer, from_grader)
        size = header_len + blob_len
        self.received = PREFIX.size + size
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

    def _frame_size(self, prefix: bytes | bytearray, from_grader: bool) -> tuple[int, int, bool]:
        """A frame's header and blob lengths and whether its header is marshal, from its
        prefix; a frame too large, or marshal from anyone but the grader, is refused here."""
        header_len, blob_len = PREFIX.unpack_from(prefix)
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
        return header_len, blob_len, marshalled

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
        if self.spin_s and self._spin_due():
            if _spin(self._readable, self.spin_s):
                self._spin_misses = 0
                deadline = None  # readable already: nothing to wait for
            else:
                self._missed()
        if deadline is not None:
            _wait(self._readable, deadline)
        try:
            chunk = os.read(self.read_fd, limit)
        except OSError as exc:
            raise ChannelClosed(str(exc)) from exc
        if not chunk:
            raise ChannelClosed("end of stream")
        return chunk

    def _spin_due(self) -> bool:
        """Whether this read polls awake (`spin_s`) before it sleeps: not while the reads
        `_missed` said to skip are left."""
        if self._spin_skips:
            self._spin_skips -= 1
            return False
        return True

    def _missed(self) -> None:
        """A spin gave up: the CPU it held was spent for nothing, and where the machine's
        other CPUs are busy it kept the other end, or another grade, from running. The next
        2, 4, ... up to 64 reads skip it; a spin that pays starts the count again."""
        self._spin_misses = min(self._spin_misses + 1, MAX_SPIN_BACKOFF)
        self._spin_skips = 1 << self._spin_misses


def _widen_pipe(fd: int) -> None:
    """Give a pipe room for a typical array in one write (Linux; elsewhere, or past the
    user's pipe allowance, it keeps its size): fewer wake-ups for both ends."""
    with contextlib.suppress(ImportError, AttributeError, OSError):
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _spin(poller: select.poll, seconds: float) -> bool:
    """Whether the poller's descriptor becomes ready within `seconds` of polling without
    sleeping: a reply that comes that soon is read without a wake-up (see
    `grader.sandbox.placement`)."""
    end = time.perf_counter() + seconds
    while not poller.poll(0):
        if time.perf_counter() >= end:
            return False
        _yield()
    return True


_yield = getattr(os, "sched_yield", lambda: None)


def _wait(poller: select.poll, deadline: float | None) -> None:
    """Until the poller's descriptor is ready (or hung up); `ChannelTimeout` at `deadline`."""
    while True:
        if poller.poll(None if deadline is None else _milliseconds_to(deadline)):
            return


def _milliseconds_to(deadline: float) -> int:
    """What is left until `deadline`, as `poll` takes it; `ChannelTimeout` past it."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise ChannelTimeout()
    return math.ceil(left * 1000)
