"""Frames and the seed profile, checked against SPEC §8 and bytes captured from the real Dynamo."""

from __future__ import annotations

import json
import pathlib

import pytest

from dynamo_nb.transport.frames import FrameDecoder, FrameError, decode_frame, encode_frame
from dynamo_nb.transport.profile import SEED, ProtocolError

CAPTURES = pathlib.Path(__file__).parent / "data" / "wire-captures"


def captures_dir() -> pathlib.Path:
    """Bytes captured from ai-dynamo-runtime 1.6.1 (see data/wire-captures/README.md)."""
    return CAPTURES


def test_frame_layout():
    frame = encode_frame(b"hdr", b"body!")
    assert frame[:24] == (3).to_bytes(8, "big") + (5).to_bytes(8, "big") + (0).to_bytes(8, "big")
    assert decode_frame(frame) == (b"hdr", b"body!")
    assert decode_frame(encode_frame()) == (b"", b"")


@pytest.mark.parametrize("garbage", [b"", b"hello", b"\x00" * 23, encode_frame(b"a", b"b") + b"extra"])
def test_garbage_is_a_frame_error(garbage):
    with pytest.raises(FrameError):
        decode_frame(garbage)


def test_incremental_decoder_handles_any_split():
    stream = b"".join(encode_frame(h, b) for h, b in [(b"h1", b""), (b"", b"b2"), (b"h3", b"b3")])
    for split in range(1, len(stream)):
        dec = FrameDecoder()
        frames = dec.feed(stream[:split]) + dec.feed(stream[split:])
        assert frames == [(b"h1", b""), (b"", b"b2"), (b"h3", b"b3")]
        assert dec.pending == 0


def test_real_dynamo_response_stream_decodes_with_our_decoder():
    data = (captures_dir() / "dynamo161-response-stream.bin").read_bytes()
    frames = FrameDecoder().feed(data)
    handshake = json.loads(frames[0][0])
    assert handshake["stream_type"] == "response" and frames[0][1] == b""
    assert json.loads(frames[1][0]) == {"error": None}
    assert frames[-1] == (b'"sentinel"', b"")
    assert len(frames) == 1 + 1 + 3 + 1 + 1  # handshake, prologue, three items, complete_final, sentinel


def test_request_control_header_shape():
    info = SEED.connection_info("127.0.0.1:5555", "sub-uuid", "req-uuid")
    header = json.loads(SEED.request_header("req-uuid", info))
    assert header == {"id": "req-uuid", "request_type": "single_in", "response_type": "many_out",
                      "connection_info": {"transport": "tcp_server", "info": info["info"]}}
    assert isinstance(header["connection_info"]["info"], str)
    assert json.loads(header["connection_info"]["info"]) == {
        "address": "127.0.0.1:5555", "subject": "sub-uuid", "context": "req-uuid", "stream_type": "response"}
    assert SEED.parse_request_header(SEED.request_header("req-uuid", info)) == ("req-uuid", info)
    with pytest.raises(ProtocolError):
        SEED.parse_request_header(b'{"id": 1}')


def test_response_frames_shape():
    assert json.loads(SEED.handshake("s")) == {"subject": "s", "stream_type": "response"}
    assert json.loads(SEED.prologue()) == {"error": None}
    assert json.loads(SEED.item({"t": 1})) == {"data": {"t": 1}, "complete_final": False}
    assert json.loads(SEED.FINAL) == {"complete_final": True}
    assert json.loads(SEED.SENTINEL) == "sentinel"
    assert SEED.parse_body(SEED.item([1, 2])).data == [1, 2]
    assert SEED.parse_body(SEED.FINAL).kind == "final"
    err = SEED.parse_body(SEED.error_item("ValueError", "bad"))
    assert (err.kind, err.error_type, err.error_message) == ("error", "ValueError", "bad")
