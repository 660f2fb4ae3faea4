"""The wire format: values survive the trip, and nothing a worker sends can hurt the grader."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import struct
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.sandbox.codec import (
    MAX_BLOBS,
    MAX_DICT_ITEMS,
    MAX_MESSAGE_DICT_ITEMS,
    MAX_METHODS,
    MAX_NODES,
    Channel,
    ChannelClosed,
    ChannelTimeout,
    Decoder,
    Encoder,
    Handle,
    ProtocolError,
    Ref,
    pack,
    plain,
    scalar_reply,
    unpack,
)


def round_trip(value, **encoder_options):
    encoder = Encoder(**encoder_options)
    header, blobs = unpack(*_split(pack({"v": encoder.encode(value)}, encoder.blobs)))
    return Decoder(blobs, make_handle=lambda h: h).decode(header["v"])


def _split(frame: bytes) -> tuple[bytes, bytes]:
    header_len, _ = struct.unpack(">IQ", frame[:12])
    return frame[12 : 12 + header_len], frame[12 + header_len :]


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(2**70),
        1.5,
        "text ✓",
        [1, [2, (3, 4)]],
        (1, "a", None),
        {"a": 1, 2: "b", (3, 4): [5]},
        {},
    ],
)
def test_plain_values_round_trip(value):
    assert round_trip(value) == value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_round_trip(value):
    got = round_trip(value)
    assert type(got) is float
    assert repr(got) == repr(value)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.arange(12, dtype=np.float32).reshape(3, 4).T,
        np.asfortranarray(np.ones((2, 3), dtype=np.int16)),
        np.array([True, False]),
        np.array([1 + 2j], dtype=np.complex128),
        np.zeros((0, 5)),
        np.array(3.5),
        np.arange(4, dtype=">f8"),
        np.arange(10)[::3],
    ],
)
def test_arrays_round_trip_as_plain_native_arrays(array):
    got = round_trip(array)
    assert type(got) is np.ndarray
    assert got.dtype.isnative
    assert got.shape == array.shape
    np.testing.assert_array_equal(got, array)


def test_numpy_scalars_keep_their_dtype():
    got = round_trip(np.float32(1.25))
    assert isinstance(got, np.float32)
    assert got == np.float32(1.25)


def test_ndarray_subclass_arrives_as_plain_ndarray():
    class Sneaky(np.ndarray):
        def __eq__(self, other):
            return np.ones(self.shape, dtype=bool)

    got = round_trip(np.zeros(3).view(Sneaky))
    assert type(got) is np.ndarray
    assert not (got == np.ones(3)).any()


def test_subclasses_of_builtins_are_sent_as_their_plain_value():
    class Lying(float):
        def __eq__(self, other):
            return True

    got = round_trip(Lying(2.0))
    assert type(got) is float
    assert got != 3.0


def test_generator_arrives_with_the_same_state_and_the_original_is_untouched():
    rng = np.random.default_rng(7)
    copy = round_trip(rng)
    assert copy is not rng
    assert copy.random() == np.random.default_rng(7).random()
    assert rng.random() == np.random.default_rng(7).random()


def test_object_arrays_and_unknown_objects_cannot_be_sent():
    with pytest.raises(TypeError):
        Encoder().encode(np.array([object()], dtype=object))
    with pytest.raises(TypeError):
        Encoder().encode(object())


def test_objects_become_handles_when_the_sender_allows_it():
    handle = Handle(3, "Affine", ("forward",))
    got = round_trip(object(), handle_for=lambda obj: handle)
    assert got == handle


def test_tracking_numbers_arguments_and_keeps_aliasing():
    x = np.ones(2)
    encoder = Encoder(track=True)
    node = encoder.encode((x, {"w": x}, [x]))
    decoder = Decoder(encoder.blobs)
    a, d, lst = decoder.decode(node)
    assert d["w"] is a
    assert lst[0] is a
    assert set(decoder.refs) == set(encoder.refs)


def test_refs_resolve_to_objects_the_receiver_holds():
    mine = np.zeros(3)
    got = Decoder([], resolve_ref={5: mine}.__getitem__).decode(Encoder().encode(Ref(5)))
    assert got is mine


ARANGE3 = np.arange(3.0).tobytes()


@pytest.mark.parametrize(
    ("node", "blob"),
    [
        ({"$a": 0, "dtype": "|O", "shape": [1]}, pickle.dumps(object())),
        ({"$a": 0, "dtype": "[('name', '<U1')]", "shape": [1]}, b"a\0\0\0"),
        ({"$a": 0, "dtype": "<U4", "shape": [1]}, b"t\0\0\0" * 4),
        ({"$a": 0, "dtype": "<M8", "shape": [3]}, ARANGE3),
        ({"$a": 0, "dtype": "<f32", "shape": [3]}, ARANGE3),
        ({"$a": 0, "dtype": 8, "shape": [3]}, ARANGE3),
        ({"$a": 0, "dtype": "<f8", "shape": [1000]}, ARANGE3),
        ({"$a": 0, "dtype": "<f8", "shape": [10**12, 10**12]}, ARANGE3),
        ({"$a": 0, "dtype": "<f8", "shape": [0, 10**30]}, b""),
        ({"$a": 0, "dtype": "<f8", "shape": [-3]}, ARANGE3),
        ({"$a": 0, "dtype": "<f8", "shape": [True, 3]}, ARANGE3),
        ({"$a": 0, "dtype": "<f8", "shape": 3}, ARANGE3),
        ({"$a": 0, "dtype": "<f8", "shape": [3], "order": "K"}, ARANGE3),
        ({"$a": 0, "shape": [3]}, ARANGE3),
        ({"$a": 1, "dtype": "<f8", "shape": [3]}, ARANGE3),
        ({"$s": 0, "dtype": "<f8", "shape": [3]}, ARANGE3),
    ],
    ids=[
        "object", "structured", "unicode", "datetime", "unknown", "not-text", "truncated",
        "huge-shape", "empty-but-huge", "negative", "bool-dim", "shape-not-list", "order",
        "no-dtype", "blob-index", "scalar-not-0d",
    ],
)  # fmt: skip
def test_decoder_rejects_anything_but_numeric_arrays(node, blob):
    with pytest.raises(ProtocolError):
        Decoder([blob]).decode(node)


def test_arrays_keep_dtype_byte_order_and_memory_order():
    fortran = np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3))
    swapped = np.arange(4, dtype=">f4")
    for array in (fortran, swapped, np.zeros((0, 3)), np.array(True), np.ones(3, np.complex64)):
        back = round_trip(array)
        assert back.dtype == array.dtype.newbyteorder("=") and back.shape == array.shape
        np.testing.assert_array_equal(back, array)
        assert back.flags.writeable and back.dtype.isnative
    assert round_trip(fortran).flags.f_contiguous


@pytest.mark.parametrize(
    "node",
    [
        {"$zzz": 1},
        {"$f": "1e999"},
        {"$a": 5},
        {"$d": [[1]]},
        {"$d": [[[1], 2]]},
        {"$h": 1, "cls": 3, "methods": []},
        {"$c": 1},
        {"$r": 9},
        {"$g": {"$d": [["bit_generator", "Evil"]]}},
        {},
        {"$t": 5},
    ],
)
def test_decoder_rejects_malformed_trees(node):
    with pytest.raises(ProtocolError):
        Decoder([]).decode(node)


def test_deeply_nested_values_are_refused_not_a_recursion_crash():
    node: object = 1
    for _ in range(1000):
        node = [node]
    with pytest.raises(ProtocolError):
        Decoder([]).decode(node)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_frame_parser(data):
    try:
        header, blobs = unpack(data, b"")
        Decoder(blobs).decode(header.get("v"))
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_frames_only_ever_raise_protocol_error(data):
    encoder = Encoder()
    value = {"x": np.arange(6.0).reshape(2, 3), "t": (1, 2.5, "s"), "n": float("nan")}
    header_bytes, blob_bytes = _split(pack({"v": encoder.encode(value)}, encoder.blobs))
    frame = bytearray(header_bytes + blob_bytes)
    for _ in range(data.draw(st.integers(1, 5))):
        position = data.draw(st.integers(0, len(frame) - 1))
        frame[position] = data.draw(st.integers(0, 255))
    cut = len(header_bytes)
    try:
        header, blobs = unpack(bytes(frame[:cut]), bytes(frame[cut:]))
        Decoder(blobs).decode(header.get("v"))
    except ProtocolError:
        pass


def _pipe_channel():
    r, w = os.pipe()
    return Channel(r, w), r, w


def test_channel_delivers_frames_and_times_out_on_silence():
    channel, r, w = _pipe_channel()
    try:
        channel.send({"op": "ping"}, [b"abc"])
        header, blobs = channel.recv()
        assert header == {"op": "ping"}
        assert blobs == [b"abc"]
        with pytest.raises(ChannelTimeout):
            channel.recv(deadline=0)
    finally:
        os.close(r)
        os.close(w)


def test_channel_reports_a_closed_pipe_and_a_truncated_frame():
    channel, r, w = _pipe_channel()
    os.write(w, pack({"op": "x"}, [])[:5])
    os.close(w)
    with pytest.raises(ChannelClosed):
        channel.recv()
    os.close(r)


def test_channel_refuses_frames_announcing_too_much_data():
    channel, r, w = _pipe_channel()
    channel.max_bytes = 1000
    os.write(w, struct.pack(">IQ", 2, 10**12) + b"{}")
    with pytest.raises(ProtocolError):
        channel.recv()
    os.close(r)
    os.close(w)


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12)
)
ARRAY_FIELDS = st.fixed_dictionaries(
    {
        "dtype": st.one_of(
            st.sampled_from(["<f8", ">i4", "|b1", "<c16", "|u1", "<f2", "<f16", "|O", "<U3"]),
            st.from_regex(r"[<>|=][a-zA-Z][0-9]{0,3}", fullmatch=True),
            JSON_SCALARS,
        ),
        "shape": st.one_of(
            st.lists(st.one_of(st.integers(-3, 6), JSON_SCALARS), max_size=4),
            st.lists(st.sampled_from([0, 1, 2**31, 2**63, 10**30]), max_size=4),  # empty, huge
            JSON_SCALARS,
        ),
        "order": st.one_of(st.sampled_from(["C", "F"]), JSON_SCALARS),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    tag=st.sampled_from(["$a", "$s"]),
    index=st.one_of(st.integers(-2, 3), JSON_SCALARS),
    fields=ARRAY_FIELDS,
    data=st.data(),
)
def test_any_array_node_decodes_as_described_or_is_refused(tag, index, fields, data):
    blob = data.draw(st.binary(max_size=200))
    # Often a blob of the advertised size, so the checks after the length check are reached.
    with contextlib.suppress(Exception), warnings.catch_warnings(action="ignore"):
        size = np.dtype(fields["dtype"]).itemsize * int(np.prod(fields["shape"]))
        if 0 <= size <= 4096 and data.draw(st.booleans()):
            blob = data.draw(st.binary(min_size=size, max_size=size))
    try:
        value = Decoder([blob, blob[:8]]).decode({tag: index, **fields})
    except ProtocolError:
        return
    array = np.asarray(value)
    assert array.dtype.kind in "biufc" and array.dtype.isnative
    assert list(array.shape) == fields["shape"]


HASH_MODULUS = 2**61 - 1  # CPython hashes k * (2**61 - 1) to 0 for every k: keys that all collide


def test_a_dict_of_hash_colliding_keys_is_refused_before_it_is_built():
    node = {"$d": [[k * HASH_MODULUS, 0] for k in range(1, 20_001)]}
    with pytest.raises(ProtocolError, match="entries"):
        Decoder([]).decode(node)


def test_many_small_dicts_cannot_add_up_to_a_large_one():
    small = {"$d": [[k * HASH_MODULUS, 0] for k in range(1, MAX_DICT_ITEMS + 1)]}
    assert len(Decoder([]).decode(small)) == MAX_DICT_ITEMS
    with pytest.raises(ProtocolError, match="entries"):
        Decoder([]).decode([small] * (MAX_MESSAGE_DICT_ITEMS // MAX_DICT_ITEMS + 1))


def test_a_message_of_too_many_values_is_refused():
    with pytest.raises(ProtocolError, match="values"):
        Decoder([]).decode([0] * (MAX_NODES + 1))


def test_decoding_counts_against_the_deadline():
    with pytest.raises(ChannelTimeout):
        Decoder([], deadline=time.monotonic() - 1).decode(list(range(100_000)))


def test_one_blob_cannot_back_two_arrays():
    node = {"$a": 0, "dtype": "<f8", "shape": [1 << 17]}
    with pytest.raises(ProtocolError, match="blob"):
        Decoder([bytes(1 << 20)]).decode([node] * 1000)


def test_a_blob_table_with_too_many_entries_is_refused():
    header = json.dumps({"blobs": [0] * (MAX_BLOBS + 1)}).encode()
    with pytest.raises(ProtocolError, match="blobs"):
        unpack(header, b"")


@pytest.mark.parametrize(
    "header",
    [
        b'{"v": NaN, "blobs": []}',
        b'{"v": -Infinity, "blobs": []}',
        b'{"v": 1e999, "blobs": []}',
        b'{"v": [1, 1e400], "blobs": []}',
    ],
)
def test_non_finite_numbers_outside_their_tag_are_refused(header):
    with pytest.raises(ProtocolError):
        header, blobs = unpack(header, b"")
        Decoder(blobs).decode(header["v"])


def test_generator_state_with_huge_integers_is_a_protocol_error():
    state = {"bit_generator": "PCG64", "state": {"state": 10**300, "inc": 1}}
    node = {"$g": Encoder().encode({**state, "has_uint32": 0, "uinteger": 0})}
    with pytest.raises(ProtocolError):
        Decoder([]).decode(node)


def test_errors_about_a_node_do_not_repeat_it_at_length():
    with pytest.raises(ProtocolError) as error:
        Decoder([]).decode({"$" + "x" * 1_000_000: 1})
    assert len(str(error.value)) < 200


def test_a_handle_carries_a_bounded_list_of_methods():
    node = {"$h": 1, "cls": "C" * 10_000, "methods": [f"m{i}" for i in range(100_000)]}
    handle = Decoder([], make_handle=lambda h: h).decode(node)
    assert len(handle.cls) <= 200
    assert len(handle.methods) <= MAX_METHODS


def test_the_sender_refuses_a_dict_the_receiver_would_refuse():
    with pytest.raises(ValueError, match="entries"):
        Encoder().encode(dict.fromkeys(range(MAX_DICT_ITEMS + 1)))


def test_channel_refuses_a_header_over_the_limit_before_reading_it():
    channel, r, w = _pipe_channel()
    channel.max_bytes = 1 << 20
    os.write(w, struct.pack(">IQ", 2 << 20, 0))
    with pytest.raises(ProtocolError, match="MB"):
        channel.recv(deadline=time.monotonic() + 5)
    os.close(r)
    os.close(w)


def test_channel_counts_header_and_blobs_against_the_limit():
    channel, r, w = _pipe_channel()
    channel.max_bytes = 1 << 20
    os.write(w, struct.pack(">IQ", 600_000, 600_000))
    with pytest.raises(ProtocolError, match="MB"):
        channel.recv(deadline=time.monotonic() + 5)
    os.close(r)
    os.close(w)


F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, Linux only


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are Linux's")
def test_send_times_out_when_the_reader_stops_reading():
    channel, r, w = _pipe_channel()
    fcntl.fcntl(r, F_SETPIPE_SZ, 4096)
    try:
        with pytest.raises(ChannelTimeout):
            channel.send({"op": "call"}, [bytes(1 << 20)], deadline=time.monotonic() + 0.2)
    finally:
        os.close(r)
        os.close(w)


def test_a_large_frame_arrives_whole_as_plain_aligned_writable_arrays():
    channel, r, w = _pipe_channel()
    value = (np.arange(3, dtype=np.int8), np.arange(1 << 16, dtype=np.float64), np.ones(5, ">f4"))
    encoder = Encoder()
    node = encoder.encode(value)
    thread = threading.Thread(target=channel.send, args=({"v": node}, encoder.blobs))
    thread.start()
    header, blobs = channel.recv(deadline=time.monotonic() + 10)
    thread.join()
    os.close(r)
    os.close(w)
    assert all(isinstance(b, memoryview) for b in blobs)  # views of one buffer, not copies
    got = Decoder(blobs).decode(header["v"])
    for array, sent in zip(got, value, strict=True):
        np.testing.assert_array_equal(array, sent)
        assert array.flags.writeable and array.flags.aligned and array.dtype.isnative


def test_big_arrays_travel_from_their_own_memory_in_frames_larger_than_the_pipe():
    """An array of `VIEW_BYTES` or more is a view of its memory, not a copy of its bytes, and a
    frame of such blobs is written from its parts, here with a deadline (so through partial
    writes of a non-blocking pipe) while the reader takes it in pieces."""
    channel, r, w = _pipe_channel()
    c_order = np.arange(3 << 18, dtype=np.float64)  # 6 MB: more than the pipe holds
    fortran = np.asfortranarray(np.arange(1 << 16, dtype=">i4").reshape(256, 256))
    value = (c_order, fortran, np.arange(7), c_order[::2])
    encoder = Encoder()
    node = encoder.encode(value)
    assert np.shares_memory(encoder.blobs[0], c_order)
    assert np.shares_memory(encoder.blobs[1], fortran)
    assert type(encoder.blobs[2]) is bytes and type(encoder.blobs[3]) is bytes  # small; strided
    sent: list[BaseException] = []

    def send() -> None:
        try:
            channel.send({"v": node}, encoder.blobs, deadline=time.monotonic() + 10)
        except BaseException as error:  # reported by the assertion below
            sent.append(error)

    thread = threading.Thread(target=send)
    thread.start()
    header, blobs = Channel(r, w).recv(deadline=time.monotonic() + 10)
    thread.join()
    os.close(r)
    os.close(w)
    assert not sent
    got = Decoder(blobs).decode(header["v"])
    for array, expected in zip(got, value, strict=True):
        np.testing.assert_array_equal(array, expected)
    assert got[1].flags.f_contiguous


def test_a_marshal_header_is_read_only_from_the_grader():
    channel, r, w = _pipe_channel()
    try:
        value = {"x": [1, 2.5, "three", None, True]}
        channel.send({"op": "call", "v": value}, [b"abc"], marshalled=True)
        header, blobs = channel.recv(deadline=time.monotonic() + 5, from_grader=True)
        assert header == {"op": "call", "v": value}
        assert blobs == [b"abc"]
        channel.send({"op": "call"}, marshalled=True)
        with pytest.raises(ProtocolError, match="only the grader"):
            channel.recv(deadline=time.monotonic() + 5)
    finally:
        os.close(r)
        os.close(w)


def test_frames_from_the_grader_may_still_be_json():
    channel, r, w = _pipe_channel()
    try:
        channel.send({"op": "exit"})
        assert channel.recv(from_grader=True) == ({"op": "exit"}, [])
    finally:
        os.close(r)
        os.close(w)


def test_an_array_sent_back_bare_takes_the_shape_and_dtype_of_the_array_sent():
    sent = np.zeros((2, 3), dtype=">f4")  # big-endian: it came back in this machine's order
    values = np.arange(6, dtype=np.float32)
    got = Decoder([values.tobytes()]).bare_array(sent, 0)
    assert got.shape == (2, 3) and got.dtype == np.dtype("=f4")
    np.testing.assert_array_equal(got.ravel(), values)


@pytest.mark.parametrize(
    ("sent", "index", "blobs"),
    [
        ({"a": 1}, 0, [bytes(8)]),
        ([1.0], 0, [bytes(8)]),
        (np.zeros(2), 0, [bytes(8)]),
        (np.zeros(2), 0, [bytes(24)]),
        (np.zeros(2), 1, [bytes(16)]),
        (np.zeros(2), -1, [bytes(16)]),
        (np.zeros(2), True, [bytes(16), bytes(16)]),
        (np.zeros(2), "0", [bytes(16)]),
    ],
    ids=["dict", "list", "short", "long", "index", "negative", "bool-index", "text-index"],
)
def test_a_bare_array_is_refused_unless_its_blob_fits_an_array_sent(sent, index, blobs):
    with pytest.raises(ProtocolError):
        Decoder(blobs).bare_array(sent, index)


def test_a_bare_array_cannot_share_a_blob_with_another_array():
    decoder = Decoder([bytes(16)])
    decoder.decode({"$a": 0, "dtype": "<f8", "shape": [2]})
    with pytest.raises(ProtocolError, match="blob"):
        decoder.bare_array(np.zeros(2), 0)
    decoder = Decoder([bytes(16)])
    decoder.bare_array(np.zeros(2), 0)
    with pytest.raises(ProtocolError, match="blob"):
        decoder.bare_array(np.zeros(2), 0)


# -- the lean path: plain calls and replies of one plain value --------------------------------

PLAIN_VALUES = [
    0,
    -1,
    2**70,
    True,
    False,
    None,
    "",
    'quote " backslash \\ newline \n nul \x00 é ✓ \U0001f600 lone \ud800',
    1.5,
    -0.0,
    1e308,
    5e-324,
    0.1,
]


@pytest.mark.parametrize("value", PLAIN_VALUES, ids=repr)
def test_a_scalar_reply_is_byte_for_byte_what_pack_writes(value):
    assert plain((value,))
    expected = pack({"op": "result", "value": Encoder().encode(value), "sync": []}, [])
    assert scalar_reply(value) == expected
    header, blobs = unpack(*_split(expected))
    assert blobs == [] and header["value"] == value and type(header["value"]) is type(value)


class Count(int):
    pass


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        Count(3),
        np.float64(1.0),
        np.int64(1),
        np.ones(2),
        [1],
        (1,),
        {},
        b"x",
    ],
    ids=repr,
)
def test_values_that_are_not_plain_take_the_general_path(value):
    assert not plain((1, value))
    assert scalar_reply(value) is None


def test_an_int_too_long_for_text_fails_in_a_scalar_reply_as_in_pack():
    with pytest.raises(ValueError, match="4300"):
        pack({"op": "result", "value": 10**5000, "sync": []}, [])
    with pytest.raises(ValueError, match="4300"):
        scalar_reply(10**5000)


RESULT_HEAD, RESULT_TAIL = '{"op":"result","value":', ',"sync":[],"blobs":[]}'
MIDDLES = [
    "1", " 1", "1 ", "-0", "-0.0", "1e999", "-1e999", "NaN", "Infinity", "-Infinity",
    '"x"', '"\\ud800"', '"\\u0000"', "true", "tru", "null", "", "[1]", '{"$a":0}',
    '1,"op":"error"', '1,"sync":[[0,1]]', '"a""b"', "1}", '{"a":1', "01", "1.", "\u00e9",
]  # fmt: skip
HEADER_TEXTS = [
    *(RESULT_HEAD + middle + RESULT_TAIL for middle in MIDDLES),
    ' {"op":"result","value":1,"sync":[],"blobs":[]}',
    '{"op":"result","value":1,"sync":[],"blobs":[]}\n',
    '{"op":"result","value":1,"sync":[],"blobs":[]}{}',
    '{"op":"result","value":1,"sync":[],"blobs":[],"extra":2}',
    '{"op":"result","value":1,"sync":[],"blobs":[1]}',
    '{"op":"result","value":1,"sync":[],"blobs":"x"}',
    '{"op":"result","value":1,"sync":[]}',
    '{"value":1,"op":"result","sync":[],"blobs":[]}',
    '{"op":"result","value":1,"sync":[],"blobs":[]}'.replace("1", "[" * 5000),
    "[]",
    "",
]


def _reference_header(data: bytes) -> object:
    """What the general reader makes of a JSON header: the header, or the error's type."""
    try:
        header = json.JSONDecoder(parse_constant=_refuse).decode(data.decode("utf-8"))
    except (ValueError, RecursionError) as error:
        return ("refused", "header is not valid JSON", type(error).__name__)
    if type(header) is not dict:
        return ("refused", "header is not an object")
    lengths = header.pop("blobs", None)
    if type(lengths) is not list or any(type(n) is not int or n < 0 for n in lengths):
        return ("refused", "bad blob table")
    if sum(lengths):
        return ("refused", "blob lengths do not add up")
    return header


def _refuse(name):
    raise ValueError(name)


def _read_header(data: bytes) -> object:
    try:
        header, _ = unpack(data, b"")
    except ProtocolError as error:
        cause = error.__cause__
        return ("refused", str(error), *([type(cause).__name__] if cause is not None else []))
    return header


@pytest.mark.parametrize("text", HEADER_TEXTS, ids=lambda text: text[:40])
def test_a_header_reads_as_the_json_decoder_reads_it_or_is_refused_alike(text):
    for data in (text.encode(), text.encode() + b"\xff"):
        expected, got = _reference_header(data), _read_header(data)
        assert got == expected
        if isinstance(got, dict) and "value" in got:  # -0.0 == 0 == False: types too
            assert repr(got["value"]) == repr(expected["value"])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='{}[]",:.-+eE0123456789aeflnrstuNIfinity \\', max_size=30))
def test_any_text_around_a_result_reads_as_the_json_decoder_reads_it(middle):
    data = (RESULT_HEAD + middle + RESULT_TAIL).encode()
    expected, got = _reference_header(data), _read_header(data)
    assert got == expected
    if isinstance(got, dict) and "value" in got:
        assert repr(got["value"]) == repr(expected["value"])


def test_a_plain_call_is_read_only_from_the_grader_and_carries_no_blobs():
    frame = pack((3, "f", (1, "x", None)), [], marshalled=True)
    channel, r, w = _pipe_channel()
    try:
        os.write(w, frame)
        assert channel.recv(from_grader=True) == ((3, "f", (1, "x", None)), [])
        os.write(w, frame)
        with pytest.raises(ProtocolError, match="only the grader"):
            channel.recv()
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(ProtocolError, match="do not add up"):
        unpack(frame[12:], b"\0", marshalled=True)


def test_frames_read_whole_in_pieces_or_several_at_once_alike():
    channel, r, w = _pipe_channel()
    array = np.arange(6.0)
    encoder = Encoder()
    first = pack({"op": "a", "v": encoder.encode(array)}, encoder.blobs)
    second = pack({"op": "b"}, [])
    try:
        os.write(w, first)  # one frame, one read: its arrays are the receiver's own
        header, blobs = channel.recv(deadline=time.monotonic() + 5)
        got = Decoder(blobs).decode(header["v"])
        got[0] = 7.0
        np.testing.assert_array_equal(got, [7.0, 1.0, 2.0, 3.0, 4.0, 5.0])
        os.write(w, second + first)  # two at once
        assert channel.recv()[0] == {"op": "b"}
        assert channel.recv()[0]["op"] == "a"
        os.write(w, first[:7])  # less than a prefix, then the rest
        writer = threading.Timer(0.05, os.write, (w, first[7:]))
        writer.start()
        header, blobs = channel.recv(deadline=time.monotonic() + 5)
        writer.join()
        np.testing.assert_array_equal(Decoder(blobs).decode(header["v"]), array)
    finally:
        os.close(r)
        os.close(w)
