"""Property-based fuzzing of every parser that reads bytes or values from the network or etcd (issue 15).

Whatever arrives, a parser returns a value or raises the package's own error (ProtocolError / FrameError), never
anything else and never hangs; and a worker fed a burst of garbage keeps serving. Example counts are bounded so
the whole file runs in a few seconds.
"""

from __future__ import annotations

import json
import random
from typing import Any, AsyncIterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamo_nb import names
from dynamo_nb.backends.real.tcp import parse_address
from dynamo_nb.errors import FrameError, ProtocolError
from dynamo_nb.transport import validate
from dynamo_nb.transport.frames import PREFIX, FrameDecoder, decode_frame, encode_frame
from dynamo_nb.transport.profile import SEED, InstanceInfo

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PREFIX_PATH = "ns/components/Comp"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def deep(n: int, open_: bytes = b"[", close: bytes = b"]") -> bytes:
    return open_ * n + close * n


json_bytes = st.one_of(
    st.binary(max_size=200),
    json_values.map(_dumps),
    st.integers(min_value=900, max_value=200_000).map(deep),
    st.integers(min_value=900, max_value=50_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
)


@FUZZ
@given(st.binary(max_size=300))
def test_decode_frame_raises_only_frame_errors(data):
    try:
        header, body = decode_frame(data)
    except FrameError:
        return
    assert encode_frame(header, body) == data[:PREFIX.size - 8] + b"\0" * 8 + data[PREFIX.size:] or len(data) >= 24


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=8), st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=40)),
                                                                   max_size=4))
def test_the_stream_decoder_raises_only_frame_errors_and_keeps_good_frames(chunks, frames):
    good = b"".join(encode_frame(h, b) for h, b in frames)
    decoder = FrameDecoder()
    cut = len(chunks) // 2
    got = []
    try:
        for chunk in chunks[:cut] + [good[i:i + 7] for i in range(0, len(good), 7)] + chunks[cut:]:
            got += decoder.feed(chunk)
    except FrameError:
        return
    if not chunks or all(not c for c in chunks):
        assert got == [(h or b"", b or b"") for h, b in frames]


@FUZZ
@given(json_bytes)
def test_control_headers_prologues_and_bodies_raise_only_protocol_errors(data):
    for parse in (SEED.parse_request_header, SEED.parse_prologue, SEED.parse_body, SEED.decode):
        try:
            parse(data)
        except ProtocolError:
            pass


@FUZZ
@given(st.one_of(json_values, st.dictionaries(st.sampled_from(["info", "transport"]),
                                              json_values | json_bytes.map(lambda b: b.decode("latin-1")))))
def test_connection_info_raises_only_protocol_errors(value):
    try:
        info = SEED.parse_connection_info(value)
    except ProtocolError:
        return
    try:
        parse_address(str(info["address"]))
    except ValueError:
        pass


def _instance_docs() -> st.SearchStrategy[Any]:
    fields = {"namespace": st.text(max_size=5) | json_values, "component": st.text(max_size=5) | json_values,
              "endpoint": st.just("gen") | json_values,
              "lease_id": st.integers(min_value=-2, max_value=2**65) | st.floats() | json_values,
              "transport": st.dictionaries(st.just("nats_tcp"), st.text(max_size=30) | json_values, max_size=1)
              | json_values}
    return st.fixed_dictionaries({}, optional=fields) | json_values


@FUZZ
@given(st.text(max_size=20), _instance_docs().map(_dumps) | json_bytes)
def test_instance_keys_and_values_give_an_instance_none_or_a_protocol_error(suffix, value):
    key = f"{PREFIX_PATH}/gen:{suffix}"
    try:
        info = SEED.parse_instance(PREFIX_PATH, key, value)
    except ProtocolError:
        return
    if info is not None:
        assert isinstance(info, InstanceInfo) and f"{info.instance_id:x}" == suffix
        assert validate.check_subject(info.subject) == info.subject and not info.subject.startswith("$")
    assert names.parse_instance_key(PREFIX_PATH, key) is not None or info is None


@FUZZ
@given(st.integers(min_value=1, max_value=2**63 - 1), st.text(max_size=40))
def test_well_formed_instances_round_trip(lease, noise):
    value = SEED.instance_value("ns", "Comp", "gen", lease)
    key = SEED.instance_key("ns", "Comp", "gen", lease)
    info = SEED.parse_instance(PREFIX_PATH, key, value)
    assert info is not None and info.instance_id == lease and info.subject == SEED.endpoint_subject(
        "ns", "Comp", "gen", lease)
    try:  # the same value under a key that says something else is never believed
        other = SEED.parse_instance(PREFIX_PATH, key + noise, value)
    except ProtocolError:
        return
    assert other is None or noise == ""


# -- a worker fed garbage keeps serving ----------------------------------------------------------------------

def garbage_burst(valid: bytes, count: int, seed: int = 15) -> list[bytes]:
    """Truncations, bit flips and splices of a valid request, and plain noise: ``count`` payloads."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        mode = n % 4
        if mode == 0:
            out.append(valid[: rng.randrange(len(valid))])
        elif mode == 1:
            flipped = bytearray(valid)
            for _ in range(rng.randrange(1, 6)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            out.append(bytes(flipped))
        elif mode == 2:
            out.append(encode_frame(valid[24:24 + rng.randrange(1, 80)], deep(rng.randrange(1, 5000))))
        else:
            out.append(rng.randbytes(rng.randrange(0, 120)))
    return out


async def test_a_worker_keeps_serving_after_a_burst_of_garbage(make_runtime):
    worker = await make_runtime()

    async def echo(request: Any) -> AsyncIterator[Any]:
        yield request

    served = await worker.endpoint("fuzz.Worker.gen").endpoint_builder().handler(echo).start()
    caller = await make_runtime()
    client = await caller.endpoint("fuzz.Worker.gen").client()
    await client.wait_for_instances(timeout=10)
    info = json.dumps({"address": "127.0.0.1:1", "subject": "s", "context": "r", "stream_type": "response"})
    valid = encode_frame(SEED.request_header("r", {"transport": "tcp_server", "info": info}), b'{"x": 1}')
    messaging = caller.backend.messaging
    burst = garbage_burst(valid, 200)
    for payload in burst[:100]:
        await messaging.publish(served.subject, payload)
    for payload in burst[100:120]:  # with a reply subject: every one is answered (an ack or a refusal)
        await messaging.request(served.subject, payload, timeout=5)
    for n in range(5):
        assert await (await client.round_robin(n)).collect() == [n]
    assert served.state.value in ("Running", "Healthy")
