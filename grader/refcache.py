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

import base64
import contextlib
import functools
import hashlib
import json
import os
import tempfile
import time
import types
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from grader import __version__
from grader.course import Assignment
from grader.errors import GraderError
from grader.sandbox.codec import Decoder, Encoder, ProtocolError, pack, unpack

ANSWERS_FILE = "reference_answers.json"
ANSWERS_FORMAT = "dl-grader reference answers"
MEMORY_LIMIT_BYTES = 512 << 20


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


def _without_generators(value: Any, found: list[np.random.Generator]) -> Any:
    """`value` with each NumPy generator replaced by a marker; the generators go to `found`."""
    if isinstance(value, np.random.Generator):
        found.append(value)
        return ("<generator>", len(found) - 1)
    if type(value) is tuple:
        return tuple(_without_generators(v, found) for v in value)
    if type(value) is list:
        return [_without_generators(v, found) for v in value]
    if type(value) is dict:
        return {k: _without_generators(v, found) for k, v in value.items()}
    return value


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
        plain = _without_generators((args, sorted(kwargs.items())), generators)
        arguments = hashlib.sha256(_frame(plain)).hexdigest()
        states = json.dumps([g.bit_generator.state for g in generators], sort_keys=True)
        key = hashlib.sha256(f"{name}\0{arguments}\0{states}".encode()).hexdigest()
        return cls(name, key, arguments, tuple(generators))

    def unchanged(self, args: tuple, kwargs: dict) -> bool:
        plain = _without_generators((args, sorted(kwargs.items())), [])
        return hashlib.sha256(_frame(plain)).hexdigest() == self.arguments

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

    def replay(self, data: bytes) -> tuple[Any, float]:
        """The stored result (a fresh copy), with the generators moved on as the call would."""
        header = _unframe(data)
        states = header.get("generators")
        if not isinstance(states, list) or len(states) != len(self.generators):
            raise ProtocolError("entry does not match the call's generators")
        for generator, state in zip(self.generators, states, strict=True):
            generator.bit_generator.state = state
        return header["value"], float(header.get("seconds", 0.0))


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
        self._memory: dict[str, bytes] = {}
        self._memory_bytes = 0

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.bin"

    def lookup(self, namespace: str, call: Call) -> bytes | None:
        if not self.enabled:
            return None
        key = hashlib.sha256(f"{namespace}\0{call.key}".encode()).hexdigest()
        if key in self._memory:
            return self._memory[key]
        if self.directory is None:
            return None
        try:
            data = self._path(key).read_bytes()
        except OSError:
            return None
        self._remember(key, data)
        return data

    def save(self, namespace: str, call: Call, data: bytes) -> None:
        if not self.enabled:
            return
        key = hashlib.sha256(f"{namespace}\0{call.key}".encode()).hexdigest()
        self._remember(key, data)
        if self.directory is not None:
            with contextlib.suppress(OSError):
                write_atomic(self._path(key), data)

    def forget(self, namespace: str, call: Call) -> None:
        """Drop an entry that could not be read back (a torn or foreign file)."""
        key = hashlib.sha256(f"{namespace}\0{call.key}".encode()).hexdigest()
        data = self._memory.pop(key, None)
        if data is not None:
            self._memory_bytes -= len(data)
        if self.directory is not None:
            with contextlib.suppress(OSError):
                self._path(key).unlink()

    def attribute(self, name: str, value: Any) -> None:
        """A non-function attribute of the reference was read (only a `Recorder` keeps it)."""

    def uncacheable(self, name: str, reason: str) -> None:
        """A call could not be cached (only a `Recorder` reports it)."""

    def _remember(self, key: str, data: bytes) -> None:
        if key not in self._memory and self._memory_bytes + len(data) <= MEMORY_LIMIT_BYTES:
            self._memory[key] = data
            self._memory_bytes += len(data)


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

    def lookup(self, namespace: str, call: Call) -> bytes | None:
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
            "version": 1,
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
    """The reference module, with its plain-data function calls answered by a cache."""

    def __init__(self, module: types.ModuleType, cache: ReferenceCache, namespace: str) -> None:
        self._module = module
        self._cache = cache
        self._namespace = namespace
        self._wrapped: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if not isinstance(value, types.FunctionType):
            self._cache.attribute(name, value)
            return value
        if name not in self._wrapped:
            self._wrapped[name] = self._wrap(name, value)
        return self._wrapped[name]

    def _wrap(self, name: str, function: types.FunctionType) -> Any:
        cache, namespace = self._cache, self._namespace

        @functools.wraps(function)
        def cached(*args: Any, **kwargs: Any) -> Any:
            try:
                call = Call.of(name, args, kwargs)
            except _Uncacheable as error:
                cache.stats.uncacheable += 1
                cache.uncacheable(name, str(error))
                return _timed(cache.stats, function, args, kwargs)[0]
            stored = cache.lookup(namespace, call)
            if stored is not None:
                try:
                    value, seconds = call.replay(stored)
                except (ProtocolError, ValueError, TypeError, KeyError):
                    cache.forget(namespace, call)
                else:
                    cache.stats.hits += 1
                    cache.stats.saved_s += seconds
                    return value
            result, seconds = _timed(cache.stats, function, args, kwargs)
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

        return cached


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
            if document.get("format") != ANSWERS_FORMAT or document.get("version") != 1:
                raise ValueError("not a reference answers file of a known version")
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
        return call.replay(data)[0]

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
        import torch

        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        _namespaces[key] = f"{digest}:{device}:{__version__}:{torch.__version__}"
    return _namespaces[key]


def reference_for(assignment: Assignment, device: str) -> Any:
    """The `reference` fixture's value: the module, cached when a cache is active, or the
    recorded answers in a student bundle (which has no reference code)."""
    path = assignment.reference_path
    answers = assignment.checks_dir / ANSWERS_FILE
    if not path.is_file() and answers.is_file():
        return RecordedReference(answers)
    from grader.plugin import load_reference

    module = load_reference(path, device)
    if _active is None:
        return module
    return CachedReference(module, _active, _namespace(path, device))


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
