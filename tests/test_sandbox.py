"""The sandbox makes calls into a worker behave like local calls, and survives the worker."""

from __future__ import annotations

import shutil
import traceback
from pathlib import Path

import numpy as np
import pytest
from support import FIXTURES

from grader.sandbox import codec
from grader.sandbox.limits import Limits
from grader.sandbox.proxy import (
    MissingName,
    RemoteObject,
    Sandbox,
    StudentError,
    StudentException,
    SubmissionImportError,
    SubmissionProxy,
    WorkerTimeout,
)


@pytest.fixture
def sandbox(tmp_path: Path):
    folder = tmp_path / "submission"
    shutil.copytree(FIXTURES / "sandbox", folder)
    box = Sandbox(folder, "probe", Limits(call_timeout_s=2.0))
    yield box
    box.close()


@pytest.fixture
def probe(sandbox: Sandbox) -> SubmissionProxy:
    return SubmissionProxy(sandbox)


def test_return_values_come_back(probe):
    assert probe.add(2, 3) == 5
    np.testing.assert_array_equal(probe.add(np.ones(2), 1), [2.0, 2.0])
    assert probe.add("a", "b") == "ab"


def test_arguments_keep_the_callers_values_whatever_the_worker_does(probe):
    x = np.arange(3.0)
    params = {"inplace": np.ones(2), "rebound": np.ones(2)}
    kept = params["inplace"]
    probe.double_in_place(x)
    probe.step(params, {"rebound": np.ones(2), "inplace": np.ones(2)})
    np.testing.assert_array_equal(x, [0.0, 1.0, 2.0])
    assert params["inplace"] is kept
    np.testing.assert_array_equal(params["inplace"], [1.0, 1.0])
    np.testing.assert_array_equal(params["rebound"], [1.0, 1.0])


def test_in_place_changes_reach_only_the_objects_named_in_inplace(probe):
    x, y = np.arange(3.0), np.arange(3.0)
    with probe.inplace(x):
        probe.double_both(x, y)
    np.testing.assert_array_equal(x, [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(y, [0.0, 1.0, 2.0])
    probe.double_both(x, y)
    np.testing.assert_array_equal(x, [0.0, 2.0, 4.0])


def test_inplace_names_leave_with_their_block_even_one_that_raised(probe):
    x, y = np.arange(3.0), np.arange(3.0)
    with probe.inplace(x):
        with pytest.raises(KeyError), probe.inplace(y):
            raise KeyError("the check failed inside the inner block")
        probe.double_both(x, y)
    np.testing.assert_array_equal(x, [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(y, [0.0, 1.0, 2.0])
    probe.double_both(x, y)
    np.testing.assert_array_equal(x, [0.0, 2.0, 4.0])


def test_inplace_takes_only_what_can_change_in_place(probe):
    with pytest.raises(TypeError, match="not float"), probe.inplace(1.0):
        pass


def test_dict_entries_rebound_by_the_student_become_new_objects(probe):
    rebound, inplace = np.ones(2), np.ones(2)
    params = {"rebound": rebound, "inplace": inplace}
    with probe.inplace(params):
        probe.step(params, {"rebound": np.ones(2), "inplace": np.ones(2)})
    assert params["inplace"] is inplace
    np.testing.assert_allclose(inplace, [0.9, 0.9])
    assert params["rebound"] is not rebound
    np.testing.assert_allclose(params["rebound"], [0.9, 0.9])
    np.testing.assert_array_equal(rebound, [1.0, 1.0])


def test_in_place_changes_land_in_arrays_of_any_byte_and_memory_order(probe):
    swapped = np.arange(3, dtype=">f8")
    fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    with probe.inplace(swapped, fortran):
        probe.double_both(swapped, fortran)
    np.testing.assert_array_equal(swapped, [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(fortran, np.arange(6.0).reshape(2, 3) * 2)
    assert swapped.dtype == np.dtype(">f8") and fortran.flags.f_contiguous


def test_an_array_that_kept_its_shape_and_dtype_comes_back_as_its_bytes_alone(probe, monkeypatch):
    reported = []
    sync = Sandbox._sync

    def spy(self, decoder, entries, refs, writable=None):
        reported.extend(node for _, node in entries)
        return sync(self, decoder, entries, refs, writable)

    monkeypatch.setattr(Sandbox, "_sync", spy)
    x = np.arange(3.0)
    with probe.inplace(x):
        probe.double_in_place(x)
    assert [type(node) for node in reported] == [int]  # a blob's number, no array node
    np.testing.assert_array_equal(x, [0.0, 2.0, 4.0])


def test_an_array_whose_dtype_the_student_changed_comes_back_whole(probe):
    """Its bytes alone would be read in the dtype the grader sent: the float values again.
    Sent whole, as the int64 array it now is, it lands as the grader's array casts it."""
    x = np.array([1.0, 2.0])
    with probe.inplace(x):
        probe.view_as_int64(x)
    np.testing.assert_array_equal(x, np.array([1.0, 2.0]).view(np.int64).astype(np.float64))


def test_lists_are_synced_back(probe):
    items = [10]
    with probe.inplace(items):
        probe.append_to(items)
    assert items == [10, 1]


def test_callables_are_called_back_in_the_trusted_process(probe):
    seen = []

    def f(x):
        seen.append(x)
        return float(np.sum(x))

    assert probe.call_back(f, np.ones(3)) == 9.0
    assert len(seen) == 2
    assert isinstance(seen[0], np.ndarray)


def test_a_callback_sees_in_place_changes_to_what_inplace_names(probe):
    """An f that reads x through a closure, as `lambda W: net.loss(x, t)` reads the weights,
    sees the worker's change while it is called, and x is as the worker left it after."""
    x = np.zeros(2)
    seen = []

    def f(_):
        seen.append(x.copy())
        return 0.0

    with probe.inplace(x):
        probe.perturb_and_call_back(f, x)
    np.testing.assert_array_equal(seen, [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(x, [0.0, 0.0])


def test_a_callback_never_sees_changes_to_what_inplace_does_not_name(probe):
    x = np.zeros(2)
    seen = []

    def f(point):
        seen.append((x.copy(), point))
        return 0.0

    probe.perturb_and_call_back(f, x)
    np.testing.assert_array_equal([closure for closure, _ in seen], [[0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal([point for _, point in seen], [[1.0, 0.0], [0.0, 1.0]])


def test_a_failing_callback_raises_in_the_students_code(probe):
    def f(x):
        if x == "boom":
            raise KeyError("no such input")
        return 1

    with pytest.raises(StudentException) as info:
        probe.call_back_twice_then_fail(f)
    assert "CallbackFailed" in info.value.message
    assert "no such input" in info.value.message


def test_generators_arrive_with_their_state(probe):
    rng = np.random.default_rng(3)
    got = probe.draw(rng, 4)
    np.testing.assert_array_equal(got, np.random.default_rng(3).normal(size=4))


def test_objects_live_in_the_worker_behind_handles(probe):
    counter = probe.Counter(5)
    assert isinstance(counter, RemoteObject)
    assert counter.count == 5
    returned = counter.increment(by=2)
    assert counter.count == 7
    assert repr(returned) == repr(counter)
    assert counter.doubled == 14
    counter.count = 1
    assert counter.count == 1


def test_remote_objects_passed_back_arrive_as_the_workers_own_objects(probe):
    counter = probe.Counter(3)
    assert probe.read_count(counter) == 3


def test_returned_functions_are_callable_handles(probe):
    assert probe.make_function()(41) == 42


def test_errstate_applies_inside_the_worker_and_is_restored(probe):
    assert probe.overflow(1000.0) == np.inf
    with probe.errstate(over="raise"), pytest.raises(StudentException, match="FloatingPointError"):
        probe.overflow(1000.0)
    assert probe.overflow(1000.0) == np.inf


def test_student_exceptions_name_the_call_and_the_line(probe):
    with pytest.raises(StudentException) as info:
        probe.fail()
    assert info.value.message == "fail() raised ValueError: a bad thing (probe.py, line 48)."
    assert "raise ValueError" in info.value.details


def test_not_implemented_says_so(probe):
    with pytest.raises(StudentException, match="todo\\(\\) is not implemented yet"):
        probe.todo()


def test_missing_names_are_reported_as_such(probe):
    with pytest.raises(MissingName, match=r"probe\.py does not define `nothing_here`"):
        probe.nothing_here()
    with pytest.raises(MissingName, match="no attribute `nope`"):
        probe.Counter().nope  # noqa: B018


def test_prints_are_captured_not_mixed_into_results(probe, sandbox):
    assert probe.shout("hello") == 5
    sandbox.close()
    assert sandbox.output.text() == "imported probe\nhello\n"


def test_a_timeout_kills_the_worker_and_the_next_call_restarts_it(probe, sandbox):
    counter = probe.Counter()
    with pytest.raises(WorkerTimeout, match="did not finish within 2 s"):
        probe.sleep_forever()
    assert probe.add(1, 1) == 2
    assert sandbox.starts == 2
    with pytest.raises(StudentError, match="lost when the worker restarted"):
        counter.increment()


def test_callback_time_does_not_count_against_the_call_timeout(probe, sandbox):
    import time

    sandbox.call_timeout = 0.5

    def slow(x):
        time.sleep(0.4)
        return 1.0

    assert probe.call_back(slow, 1.0) == 2.0


def test_import_failure_is_remembered_and_reported_for_every_call(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "probe.py").write_text("import numpy as np\nraise RuntimeError('at import')\n")
    box = Sandbox(folder, "probe", Limits())
    proxy = SubmissionProxy(box)
    depths = []
    for _ in range(3):
        with pytest.raises(SubmissionImportError, match="RuntimeError: at import") as caught:
            proxy.add(1, 2)
        depths.append(len(traceback.extract_tb(caught.value.__traceback__)))
    assert box.starts == 1
    # Each check gets its own error: one shared object would gather every check's frames.
    assert depths[2] == depths[1] <= depths[0]
    box.close()


def test_builtins_replaced_deleted_or_moved_are_restored_before_the_workers_code_runs():
    import builtins

    from grader.sandbox.worker import restore_builtins

    pristine = dict(builtins.__dict__)
    try:
        builtins.len = lambda value: 0
        del builtins.abs
        moved = builtins.__dict__.pop("zip")
        builtins.zip = moved  # same binding, new place in the dict's order
        builtins.sorted = builtins.min  # a pristine value under another pristine name
        restore_builtins()
        for name in ("len", "abs", "zip", "sorted"):
            assert builtins.__dict__[name] is pristine[name]
    finally:
        builtins.__dict__.update(pristine)


def test_every_kind_of_write_to_a_dict_changes_the_version_the_worker_checks():
    from grader.sandbox.worker import dict_version

    namespace = {"a": 1}
    version = dict_version(namespace)
    if version is None:
        pytest.skip("this interpreter keeps no dict version tags: every name is compared")
    writes = [
        lambda d: d.__setitem__("b", 2),
        lambda d: d.__setitem__("a", 3),
        lambda d: d.pop("b"),
        lambda d: d.update(c=4),
        lambda d: d.setdefault("e", 5),
        lambda d: d.popitem(),
        lambda d: d.__delitem__("a"),
        lambda d: d.clear(),
    ]
    seen = {version.value}
    for write in writes:
        write(namespace)
        assert version.value not in seen
        seen.add(version.value)
    before = version.value
    assert namespace.get("c") is None and "c" not in namespace and not list(namespace.items())
    assert version.value == before


def test_builtins_replaced_again_after_a_check_are_restored_again():
    import builtins

    from grader.sandbox.worker import restore_builtins

    pristine = builtins.len
    try:
        restore_builtins()
        restore_builtins()  # nothing written since: nothing to do
        builtins.len = lambda value: 0
        restore_builtins()
        assert builtins.len is pristine
        builtins.__dict__.update(len=abs, all=lambda values: True, map=zip)  # its own tools
        restore_builtins()
        assert builtins.len is pristine and builtins.all(()) and builtins.map is not zip
    finally:
        builtins.len = pristine


def test_the_worker_reports_changes_only_to_what_inplace_names(probe, monkeypatch):
    reported = []
    unpack = codec.unpack

    def spy(*frame, **options):
        header, blobs = unpack(*frame, **options)
        if header.get("op") == "result":
            reported.append(len(header.get("sync", [])))
        return header, blobs

    monkeypatch.setattr(codec, "unpack", spy)
    x, y = np.arange(3.0), np.arange(3.0)
    with probe.inplace(x):
        probe.double_both(x, y)
    probe.double_both(x, y)
    assert reported == [1, 0]
    np.testing.assert_array_equal(x, [0.0, 2.0, 4.0])


def test_a_method_kept_from_before_a_restart_is_looked_up_again_in_the_new_worker(tmp_path):
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "mod.py").write_text("def f():\n    return 1\n\ndef g():\n    return 1\n")
    box = Sandbox(folder, "mod", Limits(call_timeout_s=2.0))
    try:
        student = SubmissionProxy(box)
        f, g = student.f, student.g
        assert f() == g() == 1
        (folder / "mod.py").write_text("def f():\n    return 2\n")
        box._kill()  # the next call copies the submission again: g is gone
        assert f() == 2
        with pytest.raises(MissingName, match="does not define `g`"):
            g()
        with pytest.raises(MissingName, match="does not define `g`"):
            student.g()
    finally:
        box.close()


def test_a_method_of_an_object_lost_in_a_restart_fails_when_called(probe, sandbox):
    counter = probe.Counter()
    increment = counter.increment
    sandbox._kill()
    with pytest.raises(StudentError, match="was lost when the worker restarted"):
        increment()
    with pytest.raises(StudentError, match="was lost when the worker restarted"):
        counter.increment()


FAULTS_PROBE = """
import resource

def echo(x):
    return x

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
"""


def test_large_messages_reuse_their_buffers_instead_of_faulting_in_fresh_pages(tmp_path):
    """A 1 MB array's round trip used to fault in its buffers' 256 pages at every copy, on
    both sides (on a virtual machine, most of its time); both ends now keep freed buffers."""
    import resource

    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "faults.py").write_text(FAULTS_PROBE)
    box = Sandbox(folder, "faults", Limits(call_timeout_s=10.0))
    try:
        proxy = SubmissionProxy(box)
        array = np.ones(1 << 17)  # 1 MB
        for _ in range(5):  # the first messages grow the heap
            np.testing.assert_array_equal(proxy.echo(array), array)
        who = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)  # not cleanup's faults
        ours, theirs = resource.getrusage(who).ru_minflt, proxy.faults()
        for _ in range(20):
            proxy.echo(array)
        ours = resource.getrusage(who).ru_minflt - ours
        theirs = proxy.faults() - theirs
        pages = array.nbytes // resource.getpagesize()
        assert ours < pages, f"{ours} page faults in the grader for 20 round trips"
        assert theirs < pages, f"{theirs} page faults in the worker for 20 round trips"
    finally:
        box.close()


def test_a_check_function_that_stops_the_check_mid_call_leaves_no_stale_reply(probe, sandbox):
    """pytest.fail in a callback leaves the worker waiting for its answer: the next call
    must get its own reply, from a fresh worker, not the old call's."""

    def stop(x):
        pytest.fail("the check stops here")

    with pytest.raises(pytest.fail.Exception, match="the check stops here"):
        probe.call_back(stop, np.ones(3))
    assert probe.add(2, 3) == 5
    assert probe.call_back(lambda x: 1.0, np.ones(3)) == 2.0
    assert sandbox.starts == 2


def test_attributes_a_check_read_come_with_the_next_calls_reply(probe, sandbox):
    """After `layer.backward(dout)`, the check's reads of `dW` and `db` are round trips that
    only fetch what the call left: once read, they come with the reply of the next method
    call on an object of that class, each read before the next request answered from it."""
    layer = probe.Layer()
    layer.backward(np.ones(2))
    np.testing.assert_array_equal(layer.dW, [2.0, 2.0])
    assert layer.db == 2.0
    assert layer.parts["w"].tolist() == [2.0, 2.0]
    other = probe.Layer()  # the same class: another object, learned from the first
    other.backward(np.full(2, 3.0))
    before = sandbox.requests
    dW, db, parts = other.dW, other.db, other.parts
    assert sandbox.requests == before
    np.testing.assert_array_equal(dW, [6.0, 6.0])
    assert db == 6.0
    np.testing.assert_array_equal(parts["w"], [4.0, 4.0])


def test_a_prefetched_attribute_is_handed_out_once_and_forgotten_at_the_next_request(
    probe, sandbox
):
    layer = probe.Layer()
    layer.backward(np.ones(2))
    layer.dW  # noqa: B018 (learned)
    layer.backward(np.ones(2))
    first = layer.dW
    first[:] = 0  # the check's own copy: the worker's, and the next read, keep theirs
    before = sandbox.requests
    np.testing.assert_array_equal(layer.dW, [2.0, 2.0])  # a second read asks again
    assert sandbox.requests == before + 1
    layer.backward(np.ones(2))
    layer.scale(10)  # a request: what came with backward's reply is stale now
    np.testing.assert_array_equal(layer.dW, [20.0, 20.0])


def test_properties_and_objects_are_read_when_the_check_reads_them(probe, sandbox):
    """A property runs the student's code at each read, and an attribute holding an object
    comes back as a handle: neither comes along with a reply."""
    layer = probe.Layer()
    assert layer.looked == 1
    assert isinstance(layer.inner, RemoteObject)
    layer.backward(np.ones(2))
    layer.backward(np.ones(2))
    before = sandbox.requests
    assert layer.looked == 2  # the property ran once per read, never for a reply
    assert isinstance(layer.inner, RemoteObject)
    assert sandbox.requests == before + 2
