"""Reference results computed once per input: a cache for batches, answers for student bundles.

Checks call the reference solution with inputs drawn from the seeded generator, so in a batch
every submission asks for the same results. `reference_for` (what the `reference` fixture
returns) wraps the reference module when a `ReferenceCache` is active: a call whose arguments
are plain data (arrays, NumPy scalars, numbers, strings, tuples, lists, dicts, NumPy
generators) is keyed by the function's name and the exact arguments (arrays by dtype, shape
and bytes; generators by their state) and answered from memory or from a folder the batch's
workers share, restoring the generators' state as the real call would have left it. Calls
that take anything else (callables, objects), that change their arguments, or that return
something other than plain data always run the reference. Cached values are stored in the
sandbox's wire format, so reading them back never unpickles anything.

The same call key answers a student bundle: `grade release` runs the public checks with a
`Recorder` active and ships the answers (data, never code); in the bundle, `RecordedReference`
replays them. What this module does not do: decide which checks may use a cache (every call
is keyed by its full input), or trust a cached value from another reference version (the key
includes the reference file's hash, the device, the grader's and torch's versions).
"""

from __future__ import annotations

import ast
import base64
import contextlib
import functools
import hashlib
import importlib.util
import json
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from grader import __version__
from grader.atomicfile import write_atomic
from grader.course import Assignment
from grader.errors import GraderError
from grader.sandbox.codec import NUMERIC_KINDS, Decoder, Encoder, ProtocolError, pack, unpack

ANSWERS_FILE = "reference_answers.json"
ANSWERS_FORMAT = "dl-grader reference answers"
ANSWERS_VERSION = 2  # 2: arrays travel as raw bytes with dtype and shape in the header
MEMORY_LIMIT_BYTES = 512 << 20

_references: dict[tuple[str, int, str], types.ModuleType] = {}


@dataclass
class CacheStats:
    """What the cache did: calls answered, computed, not cacheable, and the seconds involved.

    `compute_s` is the time spent in reference calls that ran; `saved_s` adds up, for each
    answered call, how long computing it took when it was first computed.
    """

    hits: int = 0
    misses: int = 0
    uncacheable: int = 0
    compute_s: float = 0.0
    saved_s: float = 0.0

    def add(self, other: CacheStats) -> None:
        self.hits += other.hits
        self.misses += other.misses
        self.uncacheable += other.uncacheable
        self.compute_s += other.compute_s
        self.saved_s += other.saved_s

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


# -- keys and entries -------------------------------------------------------------------------


class _Uncacheable(Exception):
    """A value that cannot be keyed or stored (a callable, an object, a tensor...)."""


def _digest(value: Any, digest: Any, generators: list[np.random.Generator]) -> None:
    """Feed `value` into `digest`, exactly and with its types: arrays by dtype, shape and
    bytes, generators as a marker (collected into `generators`, their state keyed apart)."""
    kind = type(value)
    if kind is np.ndarray:
        if value.dtype.kind not in NUMERIC_KINDS or value.dtype.fields is not None:
            raise _Uncacheable(f"an array of dtype {value.dtype}")
        digest.update(f"a{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).data)
    elif isinstance(value, np.generic) and value.dtype.kind in NUMERIC_KINDS:
        digest.update(f"s{value.dtype.str}".encode() + value.tobytes())
    elif kind in (bool, int, float, str) or value is None:
        text = repr(value).encode()
        digest.update(f"{kind.__name__}{len(text)}:".encode() + text)
    elif kind in (tuple, list):
        digest.update(f"{kind.__name__}{len(value)}(".encode())
        for item in value:
            _digest(item, digest, generators)
        digest.update(b")")
    elif kind is dict:
        digest.update(f"dict{len(value)}(".encode())
        for key, item in value.items():
            _digest(key, digest, generators)
            _digest(item, digest, generators)
        digest.update(b")")
    elif isinstance(value, np.random.Generator):
        generators.append(value)
        digest.update(f"g{len(generators)}".encode())
    else:
        raise _Uncacheable(f"a {kind.__name__} argument")


def _arguments_digest(args: tuple, kwargs: dict, generators: list) -> str:
    digest = hashlib.sha256()
    _digest((args, sorted(kwargs.items())), digest, generators)
    return digest.hexdigest()


def _frame(value: Any) -> bytes:
    """`value` in the wire format (JSON tree + .npy blobs), or `_Uncacheable`."""
    encoder = Encoder()
    try:
        tree = encoder.encode(value)
        return pack({"value": tree}, encoder.blobs)
    except (TypeError, ValueError) as error:
        raise _Uncacheable(str(error)) from error


def _unframe(data: bytes) -> dict:
    """The header and decoded value of a frame written by `_frame`/`_entry`."""
    if len(data) < 12:
        raise ProtocolError("truncated entry")
    header_len, blob_len = int.from_bytes(data[:4], "big"), int.from_bytes(data[4:12], "big")
    if 12 + header_len + blob_len != len(data):
        raise ProtocolError("entry has the wrong length")
    header, blobs = unpack(data[12 : 12 + header_len], data[12 + header_len :])
    header["value"] = Decoder(blobs).decode(header.get("value"))
    return header


@dataclass(frozen=True)
class Call:
    """One reference call, keyed: `key` names it, `arguments` detects in-place changes."""

    name: str
    key: str
    arguments: str
    generators: tuple[np.random.Generator, ...]

    @classmethod
    def of(cls, name: str, args: tuple, kwargs: dict) -> Call:
        generators: list[np.random.Generator] = []
        arguments = _arguments_digest(args, kwargs, generators)
        states = json.dumps([g.bit_generator.state for g in generators], sort_keys=True)
        key = hashlib.sha256(f"{name}\0{arguments}\0{states}".encode()).hexdigest()
        return cls(name, key, arguments, tuple(generators))

    def unchanged(self, args: tuple, kwargs: dict) -> bool:
        return _arguments_digest(args, kwargs, []) == self.arguments

    def entry(self, result: Any, seconds: float) -> bytes:
        """What to store: the result, the generators' states after the call, the time taken."""
        encoder = Encoder()
        try:
            tree = encoder.encode(result)
        except (TypeError, ValueError) as error:
            raise _Uncacheable(str(error)) from error
        header = {
            "value": tree,
            "generators": [g.bit_generator.state for g in self.generators],
            "seconds": seconds,
        }
        return pack(header, encoder.blobs)

    def replay(self, entry: Entry) -> Any:
        """The stored result (a fresh copy), with the generators moved on as the call would."""
        if len(entry.generators) != len(self.generators):
            raise ProtocolError("entry does not match the call's generators")
        for generator, state in zip(self.generators, entry.generators, strict=True):
            generator.bit_generator.state = state
        return _copy(entry.value)


@dataclass(frozen=True)
class Entry:
    """A stored result, decoded: the value, the generators' states after the call, seconds."""

    value: Any
    generators: tuple[dict, ...]
    seconds: float

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        header = _unframe(data)
        states = header.get("generators")
        if not isinstance(states, list) or not all(isinstance(s, dict) for s in states):
            raise ProtocolError("bad generator states")
        return cls(header["value"], tuple(states), float(header.get("seconds", 0.0)))


def _copy(value: Any) -> Any:
    """A copy of decoded plain data that shares no mutable part with `value`."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if type(value) is tuple:
        return tuple(_copy(v) for v in value)
    if type(value) is list:
        return [_copy(v) for v in value]
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    return value


# -- stores -----------------------------------------------------------------------------------


class ReferenceCache:
    """Reference results by key, in memory and (optionally) in a folder shared by processes.

    With `enabled=False` nothing is stored or answered but calls are still timed, which is
    how the saving is measured.
    """

    keeps_timing = True

    def __init__(self, directory: Path | None = None, *, enabled: bool = True) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.enabled = enabled
        self.stats = CacheStats()
        self._memory: dict[str, tuple[Entry, int]] = {}
        self._memory_bytes = 0

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.bin"

    def lookup(self, namespace: str, call: Call) -> Entry | None:
        """The stored entry for `call`, from memory or disk; a torn file is dropped."""
        if not self.enabled:
            return None
        key = hashlib.sha256(f"{namespace}\0{call.key}".encode()).hexdigest()
        if key in self._memory:
            return self._memory[key][0]
        if self.directory is None:
            return None
        path = self._path(key)
        try:
            data = path.read_bytes()
            entry = Entry.decode(data)
        except OSError:
            return None
        except (ProtocolError, ValueError, TypeError):
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        self._remember(key, entry, len(data))
        return entry

    def save(self, namespace: str, call: Call, data: bytes) -> None:
        if not self.enabled:
            return
        key = hashlib.sha256(f"{namespace}\0{call.key}".encode()).hexdigest()
        self._remember(key, Entry.decode(data), len(data))
        if self.directory is not None:
            with contextlib.suppress(OSError):
                write_atomic(self._path(key), data)

    def attribute(self, name: str, value: Any) -> None:
        """A non-function attribute of the reference was read (only a `Recorder` keeps it)."""

    def uncacheable(self, name: str, reason: str) -> None:
        """A call could not be cached (only a `Recorder` reports it)."""

    def _remember(self, key: str, entry: Entry, size: int) -> None:
        if key not in self._memory and self._memory_bytes + size <= MEMORY_LIMIT_BYTES:
            self._memory[key] = (entry, size)
            self._memory_bytes += size


class Recorder(ReferenceCache):
    """Keeps every answer the reference gives (for a student bundle), answering none itself."""

    keeps_timing = False

    def __init__(self) -> None:
        super().__init__(None)
        self.answers: dict[str, bytes] = {}
        self.functions: set[str] = set()
        self.attributes: dict[str, bytes] = {}
        self.problems: list[str] = []
        self.current_check = ""

    def lookup(self, namespace: str, call: Call) -> Entry | None:
        return None

    def save(self, namespace: str, call: Call, data: bytes) -> None:
        self.answers[call.key] = data
        self.functions.add(call.name)

    def attribute(self, name: str, value: Any) -> None:
        try:
            self.attributes[name] = _frame(value)
        except _Uncacheable as error:
            self.problems.append(f"{self.current_check}: reference.{name} ({error})")

    def uncacheable(self, name: str, reason: str) -> None:
        self.problems.append(f"{self.current_check}: reference.{name}(...) ({reason})")

    def write(self, path: Path, assignment: str, seed: int) -> None:
        """Save the answers as JSON (base64 wire-format frames: data, never code)."""
        document = {
            "format": ANSWERS_FORMAT,
            "version": ANSWERS_VERSION,
            "assignment": assignment,
            "seed": seed,
            "grader_version": __version__,
            "functions": sorted(self.functions),
            "attributes": {k: _b64(v) for k, v in sorted(self.attributes.items())},
            "answers": {k: _b64(v) for k, v in sorted(self.answers.items())},
        }
        write_atomic(path, (json.dumps(document, indent=1) + "\n").encode())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- what the `reference` fixture returns -----------------------------------------------------


class CachedReference:
    """The reference module, with its plain-data function calls answered by a cache.

    The module itself (and with it torch) is imported only when a call misses the cache or
    something other than a top-level function is asked for: a grade whose answers are all
    cached never pays for importing torch.
    """

    def __init__(
        self,
        module: types.ModuleType | Callable[[], types.ModuleType],
        cache: ReferenceCache,
        namespace: str,
        functions: frozenset[str] = frozenset(),
    ) -> None:
        loaded = isinstance(module, types.ModuleType)
        self._load = None if loaded else module
        self._functions = functions
        self._loaded: types.ModuleType | None = module if loaded else None
        self._cache = cache
        self._namespace = namespace
        self._wrapped: dict[str, Any] = {}

    @property
    def _module(self) -> types.ModuleType:
        if self._loaded is None:
            assert self._load is not None
            self._loaded = self._load()
        return self._loaded

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._wrapped:
            return self._wrapped[name]
        if name not in self._functions:
            value = getattr(self._module, name)
            if not isinstance(value, types.FunctionType):
                self._cache.attribute(name, value)
                return value
        self._wrapped[name] = self._wrap(name)
        return self._wrapped[name]

    def _wrap(self, name: str) -> Any:
        cache, namespace = self._cache, self._namespace

        def cached(*args: Any, **kwargs: Any) -> Any:
            try:
                call = Call.of(name, args, kwargs)
            except _Uncacheable as error:
                cache.stats.uncacheable += 1
                cache.uncacheable(name, str(error))
                return _timed(cache.stats, getattr(self._module, name), args, kwargs)[0]
            entry = cache.lookup(namespace, call)
            if entry is not None and len(entry.generators) == len(call.generators):
                cache.stats.hits += 1
                cache.stats.saved_s += entry.seconds
                return call.replay(entry)
            result, seconds = _timed(cache.stats, getattr(self._module, name), args, kwargs)
            try:
                if not call.unchanged(args, kwargs):
                    raise _Uncacheable("it changes its arguments")
                data = call.entry(result, seconds if cache.keeps_timing else 0.0)
            except _Uncacheable as error:
                cache.stats.uncacheable += 1
                cache.uncacheable(name, str(error))
                return result
            cache.stats.misses += 1
            cache.save(namespace, call, data)
            return result

        cached.__name__ = cached.__qualname__ = name
        return cached


def top_level_functions(path: Path) -> frozenset[str]:
    """The names a reference file binds with one plain top-level `def` and nothing else:
    those can be answered from the cache without importing the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    plain = [n for n in tree.body if isinstance(n, ast.FunctionDef) and not n.decorator_list]
    defined = Counter(n.name for n in tree.body if isinstance(n, ast.FunctionDef))
    other: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            continue
        for child in ast.walk(node):
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                other.add(child.id)
            elif isinstance(child, ast.alias):
                other.add((child.asname or child.name).split(".")[0])
            elif isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                other.add(child.name)
    return frozenset(n.name for n in plain if defined[n.name] == 1 and n.name not in other)


def _timed(stats: CacheStats, function: Any, args: tuple, kwargs: dict) -> tuple[Any, float]:
    start = time.perf_counter()
    try:
        return function(*args, **kwargs), time.perf_counter() - start
    finally:
        stats.compute_s += time.perf_counter() - start


class RecordedReference:
    """A student bundle's stand-in for the reference: answers recorded by `grade release`."""

    def __init__(self, path: Path) -> None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if document.get("format") != ANSWERS_FORMAT:
                raise ValueError("not a reference answers file")
            if document.get("version") != ANSWERS_VERSION:
                raise ValueError(
                    f"its format version {document.get('version')!r} is not the "
                    f"{ANSWERS_VERSION} this grader reads; run `grade release` again"
                )
            self._seed = int(document["seed"])
            self._functions = set(document["functions"])
            self._attributes = {
                k: base64.b64decode(v) for k, v in dict(document["attributes"]).items()
            }
            self._answers = {k: base64.b64decode(v) for k, v in dict(document["answers"]).items()}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise GraderError(f"{path} is not a valid reference answers file: {error}") from error

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._attributes:
            return _unframe(self._attributes[name])["value"]
        if name in self._functions:
            return functools.partial(self._answer, name)
        return functools.partial(self._missing, name)

    def _answer(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            call = Call.of(name, args, kwargs)
        except _Uncacheable:
            self._missing(name)
        data = self._answers.get(call.key)
        if data is None:
            self._missing(name)
        return call.replay(Entry.decode(data))

    def _missing(self, name: str, *args: Any, **kwargs: Any) -> NoReturn:
        import pytest

        pytest.skip(
            f"the student bundle has no expected value of reference.{name} for these inputs "
            f"(it holds those of a correct solution with the default seed {self._seed}); "
            "this check runs in full when you submit."
        )


# -- activation -------------------------------------------------------------------------------

_active: ReferenceCache | None = None
_namespaces: dict[tuple[str, int, str], str] = {}


@contextlib.contextmanager
def caching(cache: ReferenceCache | None) -> Iterator[ReferenceCache | None]:
    """Within the block, every `reference` fixture in this process goes through `cache`."""
    global _active
    previous, _active = _active, cache
    try:
        yield cache
    finally:
        _active = previous


def activate(cache: ReferenceCache | None) -> None:
    """Make `cache` the cache of this process from now on (a batch worker's whole life)."""
    global _active
    _active = cache


def _namespace(path: Path, device: str) -> str:
    """What a cached value depends on besides the call: reference file, device, versions."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, device)
    if key not in _namespaces:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        _namespaces[key] = f"{digest}:{device}:{__version__}:{_torch_version()}"
    return _namespaces[key]


def load_reference(path: Path, device: str) -> types.ModuleType:
    """Import a reference solution once per file version and device (reused across grades)."""
    from grader import torchref

    torchref.set_device(device)
    key = (str(path), path.stat().st_mtime_ns, device)
    if key not in _references:
        spec = importlib.util.spec_from_file_location(f"dl_grader_reference_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise GraderError(f"cannot load reference solution {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _references[key] = module
    return _references[key]


def reference_for(assignment: Assignment, device: str) -> Any:
    """The `reference` fixture's value: the module, cached when a cache is active, or the
    recorded answers in a student bundle (which has no reference code)."""
    path = assignment.reference_path
    answers = assignment.checks_dir / ANSWERS_FILE
    if not path.is_file() and answers.is_file():
        return RecordedReference(answers)
    if _active is None:
        return load_reference(path, device)
    return CachedReference(
        lambda: load_reference(path, device),
        _active,
        _namespace(path, device),
        functions=top_level_functions(path),
    )


def _torch_version() -> str:
    """torch's version, read from the `version.py` torch's build writes beside its
    `__init__.py` (importing torch takes a second, `importlib.metadata` tens of ms); else
    from torch itself."""
    spec = importlib.util.find_spec("torch")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        with contextlib.suppress(OSError, SyntaxError, ValueError, UnicodeDecodeError):
            tree = ast.parse(Path(folder, "version.py").read_text(encoding="utf-8"))
            for node in tree.body:
                if (
                    isinstance(node, ast.Assign)
                    and [getattr(target, "id", None) for target in node.targets] == ["__version__"]
                    and isinstance(version := ast.literal_eval(node.value), str)
                ):
                    return version
    import torch

    return torch.__version__
