"""Offline: the dynamo profile decodes every captured byte of a real Dynamo 1.6.1 exchange, and encodes the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynamo_nb.backends.real.tcp_request import decode_request, encode_request
from dynamo_nb.errors import ProtocolError
from dynamo_nb.transport.dynamo import DynamoProfile, dynamo_error
from dynamo_nb.transport.frames import FrameDecoder, decode_frame, encode_frame
from dynamo_nb.transport.profile import SEED

CAPTURES = Path(__file__).parent / "data" / "wire-captures"
P = DynamoProfile("tcp", codec="json")


def _frames(name: str) -> list[tuple[bytes, bytes]]:
    decoder = FrameDecoder()
    frames = decoder.feed((CAPTURES / name).read_bytes())
    assert decoder.pending == 0
    return frames


def test_tcp_request_and_ack():
    data = (CAPTURES / "dynamo161-tcp-request.bin").read_bytes()
    path, headers, payload = decode_request(data)
    assert path == "5315a219ea87e406/demo/backend/generate" == headers["x-endpoint-path"]
    assert encode_request(path, headers, payload) == data  # byte for byte
    header, body = decode_frame(payload)
    control = P.parse_request(header)
    assert control.codec == "msgpack" and control.request_id == headers["request-id"]
    assert P.parse_connection_info(control.connection_info)["context"] == control.request_id
    assert P.decode(body, "msgpack") == {"n": 3, "prompt": "hello"}
    # our header for the same call has Dynamo's key order and bytes
    assert P.request_header(control.request_id, control.connection_info, "msgpack") == header
    assert (CAPTURES / "dynamo161-tcp-ack.bin").read_bytes() == b"\0\0\0\0"


@pytest.mark.parametrize("name,codec", [("dynamo161-response-stream.bin", "msgpack"),
                                        ("dynamo161-json-response-stream.bin", "json")])
def test_response_streams(name, codec):
    frames = _frames(name)
    handshake, prologue, *bodies, sentinel = frames
    assert json.loads(handshake[0])["stream_type"] == "response" and not handshake[1]
    assert P.parse_prologue(prologue[0]) is None and prologue[0] == P.prologue(None)
    assert sentinel == (P.SENTINEL, b"")
    items = [P.parse_body(body, codec) for header, body in bodies]
    assert [i.kind for i in items] == ["data"] * (len(items) - 1) + ["final"]
    for (_, body), item in zip(bodies, items, strict=True):  # we write exactly the bytes the real worker wrote
        assert (P.item(item.data, codec) if item.kind == "data" else P.final(codec)) == body
    if codec == "json":
        assert items[1].data == {"f": 1.5, "n": None, "b": True, "big": 9223372036854775813}


@pytest.mark.parametrize("name,codec,expect", [
    ("dynamo161-json-error-stream.bin", "json", ("ValueError", "bad value", "InvalidRequest", ValueError("bad value"))),
    ("dynamo161-msgpack-error-stream.bin", "msgpack", ("RuntimeError", "rt err", "Internal", RuntimeError("rt err"))),
])
def test_error_streams(name, codec, expect):
    _, _, *bodies, _ = _frames(name)
    items = [P.parse_body(body, codec) for _, body in bodies]
    [error] = [i for i in items if i.kind == "error"]
    remote_type, message, klass, exc = expect
    assert (error.error_type, error.error_message, error.details["class"]) == (remote_type, message, klass)
    [error_body] = [body for (_, body), i in zip(bodies, items, strict=True) if i.kind == "error"]
    assert P.error_item_for(exc, codec) == error_body  # byte for byte, as the real worker maps it
    assert items[-1].kind == "final"


def test_error_mapping_table():
    assert dynamo_error(TypeError("t"))["reason"] == "backend.invalid_argument"
    assert dynamo_error(ConnectionError("ce"))["class"] == "Unavailable"
    assert dynamo_error(KeyError("k"))["message"] == "KeyError: 'k'"


def test_legacy_and_metadata_only_annotations():
    legacy = json.dumps({"data": {"event": "error", "comment": ["MyError: legacy annotated error"]},
                         "complete_final": False}).encode()
    item = P.parse_body(legacy)
    assert (item.kind, item.error_type, item.error_message) == ("error", "MyError", "legacy annotated error")
    assert P.parse_body(b'{"data":{"id":"x"},"complete_final":false}').kind == "skip"


def test_only_stop_and_kill_control_frames():
    assert {P.STOP, P.KILL} == {b'"stop"', b'"kill"'}
    assert encode_frame(P.KILL) == bytes.fromhex("0000000000000006" + "00" * 16) + b'"kill"'


def test_instance_value_matches_the_peer_shape():
    value = DynamoProfile("nats", codec="msgpack").instance_value("demo", "backend", "generate", 0x51c6a233e0443d3d)
    assert value == (b'{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"demo",'
                     b'"instance_id":5892575506150473021,"transport":{"nats_tcp":"demo_backend.generate-51c6a233e0443d3d"},'
                     b'"device_type":"cpu","request_plane_codec":"msgpack"}')
    info = P.parse_instance("v1/instances/demo/backend", "v1/instances/demo/backend/generate/51c6a233e0443d3d", value)
    assert (info.plane, info.codec, info.subject) == ("nats", "msgpack", "demo_backend.generate-51c6a233e0443d3d")
    # names dynamo_nb cannot show are skipped, never raised
    odd = value.replace(b'"namespace":"demo"', b'"namespace":"Demo"')
    assert P.parse_instance("v1/instances/Demo/backend", "v1/instances/Demo/backend/generate/51c6a233e0443d3d", odd) is None


@pytest.mark.parametrize("topic", ["kv_metrics", "kv-events"])
def test_captured_event_envelopes(topic):
    subject = f"namespace.demo.component.backend.endpoint.generate.{topic}"
    event = P.decode_event(subject, (CAPTURES / f"dynamo161-event-{topic}.bin").read_bytes())
    assert (event.subject, event.topic, event.sequence) == (subject, topic, 0)
    assert event.publisher_id > 0 and event.published_at > 1_600_000_000_000
    worker = event.data["worker_id"] if topic == "kv_metrics" else event.data[0]["worker_id"]
    assert worker == 8979230102939164463
    if topic == "kv_metrics":
        assert event.data["kv_used_blocks"] == 10 and event.data["active_prefill_tokens"] is None
    else:
        assert event.data[0]["event"]["data"] == {"removed": {"block_hashes": [1]}}


def test_event_envelope_round_trip_and_seed_events():
    body = P.encode_event({"worker_id": 7, "raw": b"\x00"}, topic="kv_metrics", publisher_id=2**60, sequence=3)
    event = P.decode_event("namespace.d.component.c.endpoint.e.kv_metrics", body)
    assert (event.data, event.publisher_id, event.sequence) == ({"worker_id": 7, "raw": b"\x00"}, 2**60, 3)
    # a seed-style JSON event on the same profile stays JSON, with no envelope
    plain = P.decode_event("namespace.d.component.c.kv_events", b'{"blocks":3}')
    assert (plain.data, plain.topic, plain.publisher_id) == ({"blocks": 3}, "kv_events", None)
    with pytest.raises(ProtocolError):
        P.decode_event("s", bytes([0x81, 0xA1, 0x61, 0x01]))  # a msgpack map, not an envelope
    assert SEED.encode_event([1], topic="t", publisher_id=1, sequence=0) == b"[1]"
    assert SEED.event_channel("d", "c", "e", "t", 1) is None


def test_event_channel_value_is_the_peers():
    key, value = P.event_channel("demo", "backend", "generate", "kv_metrics", 8323734676634306)
    assert key == "v1/event_channels/namespace/demo/component/backend/endpoint/generate/topic/kv_metrics/1d9264809afac2"
    assert value == (b'{"type":"EventChannel","scope":{"kind":"endpoint","endpoint":{"namespace":"demo",'
                     b'"component":"backend","name":"generate"}},"topic":"kv_metrics","instance_id":8323734676634306,'
                     b'"transport":{"kind":"Nats","config":{"subject_prefix":'
                     b'"namespace.demo.component.backend.endpoint.generate"}}}')  # as a real 1.6.1 publisher wrote it
