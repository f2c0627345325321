"""Body codecs of the request plane: JSON always, msgpack when the ``msgpack`` package is there (loaded on use).

Dynamo chooses the codec per request (``payload_codec`` in the control header), so a profile encodes and
decodes through here with the codec of the call at hand.

>>> encode({"n": 3}, "json")
b'{"n":3}'
>>> decode(b'{"n":3}', "json")
{'n': 3}
"""

from __future__ import annotations

from typing import Any, Literal

from ..errors import ProtocolError
from .fastjson import dumps as _dumps
from .fastjson import loads as _loads

__all__ = ["Codec", "CODECS", "encode", "decode", "msgpack_available", "MSGPACK_MISSING"]

Codec = Literal["json", "msgpack"]
CODECS = ("json", "msgpack")
MSGPACK_MISSING = "payload_codec 'msgpack' needs the msgpack package: pip install 'dynamo_nb[dynamo]'"

_msgpack: Any = None


def _mp() -> Any:
    global _msgpack
    if _msgpack is None:
        try:
            import msgpack
        except ImportError as exc:
            raise ProtocolError(MSGPACK_MISSING) from exc
        _msgpack = msgpack
    return _msgpack


def msgpack_available() -> bool:
    """True when the msgpack codec can be used here."""
    try:
        _mp()
    except ProtocolError:
        return False
    return True


def encode(obj: Any, codec: str) -> bytes:
    """Encode one body; TypeError for a value the codec cannot carry, ProtocolError for an unknown codec."""
    if codec == "json":
        try:
            return _dumps(obj).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"cannot encode {type(obj).__name__} as JSON: {exc}") from exc
    if codec == "msgpack":
        mp = _mp()
        try:
            return mp.packb(obj, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise TypeError(f"cannot encode {type(obj).__name__} as msgpack: {exc}") from exc
    raise ProtocolError(f"unknown payload_codec {codec!r} (known: {', '.join(CODECS)})")


def decode(data: bytes, codec: str) -> Any:
    """Decode one body; ProtocolError when the bytes are not of that codec."""
    if codec == "json":
        try:
            return _loads(data)
        except (ValueError, TypeError, RecursionError) as exc:
            raise ProtocolError(f"body is not JSON: {exc}") from exc
    if codec == "msgpack":
        mp = _mp()
        try:
            return mp.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated types for garbage
            raise ProtocolError(f"body is not msgpack: {exc}") from exc
    raise ProtocolError(f"unknown payload_codec {codec!r} (known: {', '.join(CODECS)})")
