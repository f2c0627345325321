"""Dynamo's TwoPart frame: ``u64 header_len | u64 body_len | u64 checksum`` (big-endian), header, body."""

from __future__ import annotations

import struct

from ..errors import FrameError

__all__ = ["PREFIX", "encode_frame", "decode_frame", "FrameDecoder", "FrameError"]

PREFIX = struct.Struct(">QQQ")
_PREFIX_SIZE = PREFIX.size
MAX_FRAME = 256 * 1024 * 1024  # refuse absurd lengths from garbage input instead of allocating them


def encode_frame(header: bytes | None = None, body: bytes | None = None) -> bytes:
    """One frame; the checksum is 0, as in Dynamo's release builds.

    >>> encode_frame(b'{}', b'x').hex()
    '0000000000000002000000000000000100000000000000007b7d78'
    """
    header = header or b""
    body = body or b""
    return PREFIX.pack(len(header), len(body), 0) + header + body


def decode_frame(data: bytes) -> tuple[bytes, bytes]:
    """Decode exactly one frame (a NATS payload); raise :class:`FrameError` on anything else."""
    if len(data) < PREFIX.size:
        raise FrameError(f"frame too short: {len(data)} bytes, need at least {PREFIX.size}")
    header_len, body_len, _checksum = PREFIX.unpack_from(data)
    split = _PREFIX_SIZE + header_len
    end = split + body_len
    if end != len(data):
        raise FrameError(f"frame lengths say {end} bytes, payload has {len(data)}")
    if data.__class__ is bytes:  # slices of bytes are bytes already
        return data[_PREFIX_SIZE:split], data[split:]
    return bytes(data[_PREFIX_SIZE:split]), bytes(data[split:end])


class FrameDecoder:
    """Incremental decoder for a byte stream (the TCP response plane).

    A frame longer than ``max_frame`` is refused as soon as its prefix arrives, before anything is buffered for
    it; ``first_max`` bounds the first frame alone (a handshake is small: a peer that has not said who it is
    must not make us hold megabytes).
    """

    def __init__(self, max_frame: int = MAX_FRAME, first_max: int | None = None) -> None:
        self._buf = bytearray()
        self.max_frame = max_frame
        self._first_max = first_max

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        # Frames are cut straight out of ``data`` when nothing is left over from before (a short stream arrives
        # in one piece): no copy into the buffer and out again.
        buf: bytes | bytearray = data
        if self._buf:
            self._buf += data
            buf = self._buf
        frames = []
        pos, size, unpack = 0, len(buf), PREFIX.unpack_from
        while size - pos >= 24:
            header_len, body_len, _ = unpack(buf, pos)
            limit = self.max_frame if self._first_max is None else self._first_max
            if header_len + body_len > limit:
                raise FrameError(f"frame of {header_len + body_len} bytes exceeds the {limit}-byte limit")
            start = pos + 24
            end = start + header_len + body_len
            if size < end:
                break
            frames.append((bytes(buf[start:start + header_len]), bytes(buf[start + header_len:end])))
            pos = end
            self._first_max = None
        if buf is self._buf:
            del self._buf[:pos]
        elif pos < size:
            self._buf += data[pos:]
        return frames

    @property
    def pending(self) -> int:
        return len(self._buf)

    def take_pending(self) -> bytes:
        """The bytes of an unfinished frame, handed over (a connection switching to another framing)."""
        pending, self._buf = bytes(self._buf), bytearray()
        return pending
