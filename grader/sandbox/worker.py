"""The untrusted side: a process that imports one submission and runs calls on request.

The worker limits itself (rlimits) before importing the student's module, then answers
requests from the trusted grader over a pipe: call a function or method, get or set an
attribute, set NumPy's error state, or run a function of the worker-side `torch_harness` on
the submission's objects. Whatever it sends back is decoded strictly by the trusted side,
so nothing the submission does in here (monkeypatching, exiting, lying objects) can change
a score; at worst it fails its own checks.

Only `codec` and the standard library are imported before the submission.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import importlib
import json
import math
import operator
import os
import sys
import traceback
import types
from typing import Any

import numpy as np

from grader.forbidden import install_import_guard
from grader.sandbox.cgroups import join_self
from grader.sandbox.codec import (
    Callback,
    Channel,
    Decoder,
    Encoder,
    Handle,
    ProtocolError,
    Ref,
    define_function,
    scalar_reply,
)
from grader.sandbox.hardening import harden, readable_roots
from grader.sandbox.namespaces import (
    Isolation,
    inside,
    isolate,
    private_files,
    view,
    watch_parent,
)
from grader.sandbox.prefetch import attributes_of, encode_attributes
from grader.sandbox.privileges import UID_BASE, is_root

_RLIMITS = {
    "cpu_s": ("RLIMIT_CPU", 1),
    "file_size_mb": ("RLIMIT_FSIZE", 1 << 20),
    "open_files": ("RLIMIT_NOFILE", 1),
    "processes": ("RLIMIT_NPROC", 1),
}


MAX_FUNCTIONS = 256  # compiled functions the worker keeps for reuse

_PRISTINE_BUILTINS = dict(builtins.__dict__)
_BUILTIN_VALUES = tuple(_PRISTINE_BUILTINS.values())


def dict_version(namespace: dict) -> Any | None:
    """A live view (`.value`) of the version tag CPython keeps in each dict and changes at
    every write to it (3.11 to 3.13), where this interpreter is checked to have one (its
    layout, and a new value at each kind of write); None elsewhere."""
    try:
        import ctypes
    except ImportError:
        return None
    header = object.__basicsize__  # a reference count and a type
    if sys.implementation.name != "cpython" or dict.__basicsize__ != header + 32:
        return None
    offset = header + ctypes.sizeof(ctypes.c_ssize_t)  # after the number of entries

    def tag(d: dict) -> Any:
        return ctypes.c_uint64.from_address(id(d) + offset)

    probe: dict = {}
    seen = {tag(probe).value}
    for change in (lambda: probe.update(a=1), lambda: probe.update(a=2), probe.clear):
        change()
        if tag(probe).value in seen:
            return None
        seen.add(tag(probe).value)
    return tag(namespace)


_BUILTINS_VERSION = dict_version(builtins.__dict__)
_checked_version = -1  # the builtins' version when they were last found pristine
_len, _all, _map = len, all, map  # what the check itself uses, as the builtins were


def restore_builtins() -> None:
    """Undo any replacement of builtins by student code before the worker's own code runs."""
    global _checked_version
    # It runs for every message: the usual case, nothing written to the builtins since the
    # last check, is one read of their dict's version tag, where the interpreter has one.
    if _BUILTINS_VERSION is not None and _BUILTINS_VERSION.value == _checked_version:
        return
    namespace = builtins.__dict__
    # Else the values in the dict's order, by identity, at C speed, so no student code runs
    # for it. Replacing a binding changes a value there, deleting one shifts the rest, and
    # then every name is looked up below. (Without a version tag, code set on breaking the
    # worker could pop an entry and re-add its value under another name unseen; it gains
    # nothing by that it could not have otherwise.)
    if _len(namespace) != _len(_BUILTIN_VALUES) or not _all(
        _map(operator.is_, namespace.values(), _BUILTIN_VALUES)
    ):
        for name, value in _PRISTINE_BUILTINS.items():
            if namespace.get(name) is not value:
                namespace[name] = value
    if _BUILTINS_VERSION is not None:
        _checked_version = _BUILTINS_VERSION.value


class CallbackFailed(Exception):
    """A function the grader passed in (such as a loss `f`) raised when called back."""


def process_limit(allowed: int, loadavg: str = "/proc/loadavg") -> int | None:
    """The RLIMIT_NPROC value that lets the worker start `allowed` more tasks, or None.

    The kernel counts every process and thread of the real uid against it. A root grader's
    worker gets a uid of its own (`privileges`), so `allowed` is the limit. A worker of a
    non-root grader shares its uid with the user's other programs (a browser or an editor
    alone can run over a thousand threads), so it gets `allowed` on top of every task running
    on the machine now (an upper bound of the user's own), or no limit where that count is
    unknown (no /proc).
    """
    if is_root():
        return allowed
    try:
        with open(loadavg, encoding="ascii") as file:
            running_total = file.read().split()[3]
        return int(running_total.split("/")[1]) + allowed
    except (OSError, ValueError, IndexError):
        return None


def apply_limits(limits: dict[str, Any]) -> list[str]:
    """Set this process's resource limits; return the ones the platform accepted."""
    import resource

    memory = {"as": "RLIMIT_AS", "data": "RLIMIT_DATA"}.get(limits.get("memory_kind", "as"))
    wanted = dict(_RLIMITS)
    if memory:
        wanted["memory_mb"] = (memory, 1 << 20)
    applied = []
    for key, (name, scale) in wanted.items():
        value = limits.get(key)
        if value and key == "processes":
            value = process_limit(value)
        if not value or not hasattr(resource, name):
            continue
        soft = int(value * scale)
        hard = soft + 5 if key == "cpu_s" else soft
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
            applied.append(name)
        except (ValueError, OSError):
            continue
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return applied


class Worker:
    """Holds the submission's objects and serves requests until told to stop."""

    def __init__(self, channel: Channel, submission_dir: str) -> None:
        self.channel = channel
        self.submission_dir = os.path.realpath(submission_dir)
        self.objects: dict[int, Any] = {}
        self.handles: dict[int, Handle] = {}
        self.functions: dict[tuple[str, str], Any] = {}

    def handle_for(self, value: Any) -> Handle:
        for ident, obj in self.objects.items():
            if obj is value:
                return self.handles[ident]
        ident = len(self.objects)
        source = value if isinstance(value, types.ModuleType) else type(value)
        methods = []
        for name in dir(source):
            if name.startswith("__"):
                continue
            try:
                attr = getattr(source, name)
            except Exception:
                continue
            if callable(attr):
                methods.append(name)
        handle = Handle(ident, getattr(type(value), "__name__", "object"), tuple(methods))
        self.objects[ident] = value
        self.handles[ident] = handle
        return handle

    # -- requests -------------------------------------------------------------------------

    def serve(self) -> None:
        recv = self.channel.recv
        while True:
            header, blobs = recv(from_grader=True)
            if type(header) is tuple:
                self.call_plain(header)
            elif header.get("op") == "exit":
                return
            else:
                self.dispatch(header, blobs)

    def call_plain(self, request: tuple) -> None:
        """A call whose arguments the grader sent as they are (a plain call: see `pack`):
        nothing to decode, no argument to watch, and a plain result goes back as
        `scalar_reply` writes it."""
        try:
            target, name, args = request
            target = self.objects[target]
            value = (target if name is None else getattr(target, name))(*args)
            restore_builtins()
            frame = scalar_reply(value)
            if frame is None:
                self._reply_value(value, [])
            else:
                self.channel.write(frame)
        except BaseException as exc:  # the student's failure is data for the grader
            restore_builtins()
            self._send(describe_exception(exc, self.submission_dir))

    def dispatch(self, header: dict | tuple, blobs: list[bytes]) -> None:
        if type(header) is tuple:
            self.call_plain(header)
            return
        op = header.get("op")
        if op == "settle":  # now on the grader thread's CPU: wait asleep (no reply)
            self.channel.spin_s = 0.0
            return
        call = ArgumentWatch()
        decoder = Decoder(
            blobs,
            make_callback=lambda callback: self._callback(callback, call),
            make_handle=self._object_for,
            make_function=lambda *spec: self._function(*spec, call=call),
        )
        try:
            target = self.objects[header["target"]] if "target" in header else None
            if op == "call":
                args = decoder.decode(header["args"])
                kwargs = decoder.decode(header["kwargs"])
                call.watch(decoder.refs, header.get("watch", []))
                func = target if header.get("name") is None else getattr(target, header["name"])
                value = func(*args, **kwargs)
                self._reply_value(value, call.changes(final=True), target, header.get("prefetch"))
            elif op == "getattr":
                self._reply_value(getattr(target, header["name"]), [])
            elif op == "setattr":
                setattr(target, header["name"], decoder.decode(header["value"]))
                self._reply_value(None, [])
            elif op == "seterr":
                self._reply_value(np.seterr(**decoder.decode(header["settings"])), [])
            elif op == "run":  # a function of the grader's, sent as its text, on these
                function, *args = decoder.decode(header["args"])
                if not isinstance(function, types.FunctionType):
                    raise ProtocolError("run takes a function sent as its text")
                self._reply_value(function(*args), [])
            elif op == "harness":
                harness = importlib.import_module("grader.sandbox.torch_harness")
                if header.get("name") not in harness.FUNCTIONS:
                    raise ProtocolError(f"no harness function {header.get('name')!r}")
                args = decoder.decode(header["args"])
                self._reply_value(getattr(harness, header["name"])(*args), [])
            else:
                self._send({"op": "error", "type": "ProtocolError", "message": f"bad op {op}"})
        except BaseException as exc:  # the student's failure is data for the grader
            restore_builtins()
            self._send(describe_exception(exc, self.submission_dir))
        finally:
            call.finished = True

    def _function(
        self,
        name: str,
        source: str,
        free: tuple[str, ...],
        cells: list,
        report: int | None = None,
        call: ArgumentWatch | None = None,
    ) -> Any:
        """A function the grader sent as source (`grader.portable`), defined here with only
        NumPy, math and the builtins in reach; each text is compiled once. One that closes
        over values is made afresh from them (data decoded with this message). `report`: the
        grader's observer of its calls, told of each while `call` runs (`_reporting`)."""
        function = self._made(name, source, free, cells)
        if report is None:
            return function
        if call is None:
            raise ProtocolError("a function that reports its calls outside a call")
        return self._reporting(function, report, call)

    def _reporting(self, function: Any, report: int, call: ArgumentWatch) -> Any:
        """`function`, telling the grader of each call while `call` runs: its arguments,
        and the changes `call` has made to its own arguments so far, which the grader's
        observer reads as it would as a callback. No answer is awaited: what the student's
        code gets is what `function` returns here."""

        def reported(*args: Any, **kwargs: Any) -> Any:
            if not call.finished:
                self._send_call("report", report, args, kwargs, call)
            return function(*args, **kwargs)

        reported.__name__ = function.__name__
        return reported

    def _made(self, name: str, source: str, free: tuple[str, ...], cells: list) -> Any:
        key = (name, source, free)
        made = self.functions.get(key)
        if made is None:
            namespace = {"__builtins__": builtins, "np": np, "numpy": np, "math": math}
            try:
                maker = define_function(name, source, free, namespace)
            except (SyntaxError, ValueError) as error:
                raise ProtocolError(f"the source sent for {name[:100]!r}: {error}") from None
            made = maker if free else maker()
            if len(self.functions) < MAX_FUNCTIONS:
                self.functions[key] = made
        return made(*cells) if free else made

    def _object_for(self, handle: Handle) -> Any:
        """The worker's own object behind a handle the grader sent back as an argument."""
        if handle.id not in self.objects:
            raise ProtocolError(f"unknown handle {handle.id}")
        return self.objects[handle.id]

    def _reply_value(
        self,
        value: Any,
        changes: list[tuple[int, Any]],
        target: Any = None,
        prefetch: list | None = None,
    ) -> None:
        """Send a call's result and its changes to the arguments; with `prefetch`, the
        attributes of the call's `target` it names that can come along (`grader.sandbox.
        prefetch`)."""
        restore_builtins()
        encoder = Encoder(handle_for=self.handle_for)
        try:
            header = {
                "op": "result",
                "value": encoder.encode(value),
                "sync": _sync_entries(encoder, changes),
            }
        except (TypeError, ValueError) as exc:
            header = {"op": "error", "type": "TypeError", "message": f"cannot return it: {exc}"}
            encoder.blobs.clear()
        else:
            if prefetch is not None:
                self._attach_attributes(header, encoder.blobs, target, prefetch)
        self.channel.send(header, encoder.blobs)

    @staticmethod
    def _attach_attributes(header: dict, blobs: list, target: Any, prefetch: Any) -> None:
        """The attributes of `target` the grader asked for that can come along (`grader.
        sandbox.prefetch`): none if reading them fails in any way (the check reads them
        then), so that the call itself, which succeeded, stays a success. A malformed list
        from the grader is a ProtocolError (`attributes_of`), reported as such."""
        mark = len(blobs)
        try:
            attributes = attributes_of(target, prefetch)
            if attributes:
                header["attrs"] = encode_attributes(attributes, blobs)
        except ProtocolError:
            raise
        except Exception:
            header.pop("attrs", None)
            del blobs[mark:]

    def _send(self, header: dict) -> None:
        self.channel.send(header)

    def _send_call(
        self, op: str, ident: int, args: tuple, kwargs: dict, call: ArgumentWatch
    ) -> None:
        """Tell the grader of a call of its function number `ident` (`op`: a callback, or a
        report to an observer): the arguments, and the changes `call` has made to its own
        arguments so far."""
        restore_builtins()
        encoder = Encoder(handle_for=self.handle_for)
        header = {
            "op": op,
            "id": ident,
            "args": encoder.encode(args),
            "kwargs": encoder.encode(kwargs),
            "sync": _sync_entries(encoder, call.changes(final=False)),
        }
        self.channel.send(header, encoder.blobs)

    def _callback(self, callback: Callback, call: ArgumentWatch) -> Any:
        """A stand-in for a function of the grader's that `call` received: calling it sends
        the arguments, and the changes the call has made to its own arguments so far, so a
        function reading them through a closure sees them as a local call would."""

        def call_grader(*args: Any, **kwargs: Any) -> Any:
            self._send_call("callback", callback.id, args, kwargs, call)
            while True:
                reply, blobs = self.channel.recv(from_grader=True)
                op = reply.get("op") if type(reply) is dict else None
                if op == "callback_result":
                    decoder = Decoder(
                        blobs,
                        make_callback=lambda inner: self._callback(inner, ArgumentWatch()),
                        make_function=self._function,
                    )
                    return decoder.decode(reply["value"])
                if op == "callback_error":
                    raise CallbackFailed(reply.get("message", "the function raised"))
                self.dispatch(reply, blobs)

        call_grader.__name__ = "f"
        return call_grader


class ArgumentWatch:
    """The arguments of one call that the grader asked about (those its check named in
    `student.inplace`), to report what the call changed in them: at each callback what
    changed since the last report, and when it returns what differs from the start or from
    the last report (an argument a callback saw perturbed and that was put back since)."""

    def __init__(self) -> None:
        self.refs: dict[int, Any] = {}
        self.start: dict[int, Any] = {}
        self.reported: dict[int, Any] = {}
        self.finished = False  # replied: what its arguments do now is no longer reported

    def watch(self, refs: dict[int, Any], wanted: Any) -> None:
        """Watch the arguments `wanted` names (numbers of `refs`, the call's arguments)."""
        if type(wanted) is not list:
            raise ProtocolError("bad watch list")
        for ref in wanted:
            if type(ref) is not int:
                raise ProtocolError("bad watch list")
        self.refs = refs
        self.start = self.reported = {
            ref: _state(refs[ref])
            for ref in wanted
            if ref in refs and isinstance(refs[ref], _WATCHABLE)
        }

    def changes(self, *, final: bool) -> list[tuple[int, Any]]:
        """What changed, as (argument number, value); an array still of the shape and dtype
        it arrived with is given as its bytes alone (see `_sync_entries`)."""
        if not self.start:  # no array, dict or list among the arguments
            return []
        if final:
            if self.reported is self.start:  # no callback reported anything in between
                return self._bare(_changes(self.refs, self.start))
            return self._bare(_changes(self.refs, self.start, self.reported))
        changed = _changes(self.refs, self.reported)
        if changed:
            self.reported = _snapshot({ref: self.refs[ref] for ref in self.start})
        return self._bare(changed)

    def _bare(self, changed: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
        """`changed` with each array that kept the shape and dtype it arrived with replaced by
        its bytes: the grader knows the rest."""
        start = self.start
        for i, (ref, value) in enumerate(changed):
            arrived = start.get(ref) if type(value) is np.ndarray else None
            if type(arrived) is tuple and value.shape == arrived[0] and value.dtype == arrived[1]:
                changed[i] = (ref, value.tobytes())
        return changed


_WATCHABLE = (np.ndarray, dict, list)


def _state(obj: Any) -> Any:
    """What an argument looks like now: an array's bytes, a dict's or list's entries."""
    if isinstance(obj, np.ndarray):
        return (obj.shape, obj.dtype, obj.tobytes())
    if isinstance(obj, dict):
        return [(k, id(v)) for k, v in obj.items()]
    return [id(v) for v in obj]


def _snapshot(refs: dict[int, Any]) -> dict[int, Any]:
    """What each argument looked like when it arrived, to find what the call changed."""
    return {ref: _state(obj) for ref, obj in refs.items() if isinstance(obj, _WATCHABLE)}


def _changes(refs: dict[int, Any], *snapshots: dict[int, Any]) -> list[tuple[int, Any]]:
    """The arguments that differ from any of `snapshots`, in a form that keeps argument
    identity."""
    changed = []
    by_identity: dict[int, int] | None = None
    first, *others = snapshots
    for ref, before in first.items():
        obj = refs[ref]
        now = _state(obj)
        if now == before and (not others or all(now == snapshot[ref] for snapshot in others)):
            continue
        if isinstance(obj, np.ndarray):
            changed.append((ref, obj))
            continue
        if by_identity is None:
            by_identity = {id(value): key for key, value in refs.items()}
        if isinstance(obj, dict):
            changed.append((ref, {k: _kept(v, by_identity) for k, v in obj.items()}))
        else:
            changed.append((ref, [_kept(v, by_identity) for v in obj]))
    return changed


def _sync_entries(encoder: Encoder, changes: list[tuple[int, Any]]) -> list[list[Any]]:
    """The `sync` list of a reply: [argument number, value] for each change, where a value
    of bytes (an array in the shape and dtype the grader sent it with) goes as the number of
    its blob alone."""
    entries = []
    blobs = encoder.blobs
    for ref, value in changes:
        if type(value) is bytes:
            entries.append([ref, len(blobs)])
            blobs.append(value)
        else:
            entries.append([ref, encoder.encode(value)])
    return entries


def _kept(value: Any, by_identity: dict[int, int]) -> Any:
    """An argument inside a changed dict or list as a reference, so it keeps its identity."""
    ref = by_identity.get(id(value))
    return value if ref is None else Ref(ref)


forbidden_files: dict[str, str] = {}  # folder of a forbidden library -> its name


def _forbidden_library_behind(exc: BaseException) -> str | None:
    """The forbidden library whose (hidden) files the failure was about, if any."""
    seen = 0
    while exc is not None and seen < 10:
        text = " ".join(
            str(x) for x in (getattr(exc, "filename", None), getattr(exc, "path", None), exc)
        )
        for folder, name in forbidden_files.items():
            if folder in text:
                return name
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def describe_exception(exc: BaseException, submission_dir: str) -> dict:
    """The student's exception as data: type, message and the frames in their own files."""
    try:
        message = str(exc)
    except Exception:
        message = "<exception message could not be printed>"
    if isinstance(exc, SystemExit):
        message = f"sys.exit({exc.code!r}) was called"
    library = _forbidden_library_behind(exc)
    if library is not None:
        message = f"{library} may not be used in this assignment ({message})"
    frames = []
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith("<"):
            continue
        path = os.path.realpath(frame.filename)
        if path.startswith(submission_dir + os.sep):
            relative = os.path.relpath(path, submission_dir)
            frames.append([relative, frame.lineno or 0, frame.name, (frame.line or "")[:200]])
    if isinstance(exc, SyntaxError) and exc.filename:
        message = exc.msg or message  # the frame below says where; str(exc) would repeat it
        frames.append([os.path.basename(exc.filename), exc.lineno or 0, "", (exc.text or "")[:200]])
    return {
        "op": "error",
        "type": type(exc).__name__[:100],
        "message": message[:2000],
        "frames": frames[-8:],
    }


def forbidden_locations(names: tuple[str, ...]) -> dict[str, str]:
    """The installed folders of the forbidden libraries (folder -> name), found without
    importing them, so the worker can be kept from reading their files at all."""
    return dict(_forbidden_locations(names))


@functools.cache
def _forbidden_locations(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    import importlib.util

    found = {}
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            if os.path.isdir(location):
                found[os.path.realpath(location)] = name
    return tuple(found.items())


def prepare(config: dict[str, Any]) -> None:
    """In the fork server's template, before it forks a worker for `config`: work out what
    that worker would otherwise work out after its fork, the same for every worker (where
    the forbidden libraries lie, what of the machine its root shows), so the fork inherits
    it. Names with a dot are left to the worker: finding them imports their parent."""
    names = tuple(config.get("forbidden_imports", ()))
    if all(isinstance(name, str) and "." not in name for name in names):
        forbidden_locations(names)
    roots = config.get("readable_roots")
    if roots:
        view(tuple(roots))


def confine(config: dict[str, Any], isolation: Isolation) -> tuple[str, list[str], dict[str, str]]:
    """Give the worker its private files, limits and protections before any student code
    runs; its submission folder (as it now sees it), the limits applied and the protections."""
    limits = config["limits"]
    enabled = limits.get("harden", True)
    submission_dir = config["submission_dir"]
    folder = os.path.dirname(os.path.realpath(submission_dir))
    grader_package = os.path.dirname(os.path.realpath(__file__))
    hidden = forbidden_locations(tuple(config.get("forbidden_imports", ()))) if enabled else {}
    # The course and the grader's data folder, wherever they are installed: never readable
    # (masked unless they hold the grader's own package, which Landlock then opens around).
    roots = config.get("readable_roots") or readable_roots(grader_package)
    secret = [p for p in config.get("hidden_paths", []) if os.path.isdir(p)]
    needed = [os.path.realpath(p) for p in (grader_package, *roots)]

    def holds_needed(folder: str) -> bool:
        folder = os.path.realpath(folder)
        return any(path == folder or inside(path, folder) for path in needed)

    masked = [p for p in secret if not holds_needed(p)]
    protections = dict(isolation.report)
    private = False
    if isolation.namespaces:
        try:
            scratch = limits.get("scratch_mb", 256)
            files = private_files(folder, roots, hidden, scratch, masked)
        except OSError as error:
            protections["scratch"] = f"failed: {error.strerror or error}"
        else:
            private = True
            folder = files.folder
            submission_dir = os.path.join(folder, "submission")
            os.environ["HOME"] = os.environ["TMPDIR"] = os.path.join(folder, "home")
            protections.update(files.report)
    applied = apply_limits(limits)
    os.chdir(submission_dir)
    sys.path[:] = [submission_dir] + [p for p in sys.path if p != config["grader_root"]]
    protections.update(
        harden(
            writable=folder,
            grader_package=grader_package,
            enabled=enabled,
            isolated=private,
            hidden=(*secret, *(() if private else hidden)),  # libraries masked when private
            uid=UID_BASE + isolation.host_pid,
            roots=roots,
        )
    )
    if hidden and not private:
        walled = protections.get("filesystem", "").startswith("active")
        names = ", ".join(sorted(set(hidden.values())))
        protections["forbidden files"] = (
            f"active: Landlock hides {names}" if walled else "unavailable: needs Landlock"
        )
    forbidden_files.update(hidden)
    return submission_dir, applied, protections


def take_cpus(cpus: list[int] | None) -> None:
    """Run on the CPUs the grader's thread had when it asked for this worker, as a worker it
    started itself would: one forked from the fork server's template has the template's."""
    if cpus and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError, ValueError, TypeError):
            if os.sched_getaffinity(0) != set(cpus):
                os.sched_setaffinity(0, cpus)


def main(config_json: str) -> None:
    """Entry point: isolate, confine, import the submission, report readiness, serve."""
    config = json.loads(config_json)
    watch_parent(config.get("parent_pid"))
    channel = Channel(config["read_fd"], config["write_fd"])
    channel.spin_s = float(config.get("spin_s", 0.0))
    take_cpus(config.get("cpus"))
    if config.get("group"):  # children are born in it; the grader sees whether it joined
        with contextlib.suppress(OSError):
            join_self(config["group"])
    elif config.get("await_group"):
        channel.recv()  # the grader has moved us into our cgroup: children are born in it
    isolation = isolate(config["limits"].get("harden", True))
    submission_dir, applied, protections = confine(config, isolation)
    # Changing credentials cleared the parent-death signal: set it again.
    watch_parent(1 if isolation.namespaces else config.get("parent_pid"))
    worker = Worker(channel, submission_dir)
    install_import_guard(tuple(config.get("forbidden_imports", ())))
    try:
        module = importlib.import_module(config["module"])
    except BaseException as exc:  # reported to the grader as the import failure
        restore_builtins()
        report = describe_exception(exc, worker.submission_dir)
        channel.send({**report, "op": "import_error"})
        return
    restore_builtins()
    ready = {"op": "ready", "limits": applied, "protections": protections}
    channel.send({**ready, "module": worker.handle_for(module).methods})
    worker.serve()
