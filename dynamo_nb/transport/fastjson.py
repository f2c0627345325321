"""Compact JSON for the call path, with the encoder and decoder built once instead of once per document.

``json.dumps`` / ``JSONEncoder.encode`` build a C encoder for every call, and ``json.loads`` of bytes first
sniffs their encoding; on a call that encodes and decodes a few small documents that is most of their cost.
The output is byte for byte what ``json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)`` writes.

>>> dumps({"a": [1, 2.5, None], "b": "é"})
'{"a":[1,2.5,null],"b":"é"}'
>>> loads(b'{"a":1}')
{'a': 1}
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dumps", "loads"]

_reference = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
try:
    from _json import make_encoder as _make_encoder

    # No circular-reference markers (a shared marker dict would keep stale ids after a failed encode): a
    # circular document ends in RecursionError, which every caller reports as "cannot encode".
    _encoder: Any = _make_encoder(None, _reference.default, json.encoder.encode_basestring, None, ":", ",",
                                  False, False, True)
except ImportError:  # pragma: no cover - CPython always has _json
    _encoder = None

_decoder = json.JSONDecoder()
_decode = _decoder.decode
# The C scanner: one value from an index, without the whitespace regexes ``decode`` runs around it.
_scan = _decoder.scan_once  # type: ignore[attr-defined]


def _whole(text: str) -> Any:
    """The document ``text`` holds; the scanner alone when it starts and ends with the value (what every
    compact encoder writes), else the full decoder, which also says what is wrong."""
    try:
        obj, end = _scan(text, 0)
    except StopIteration:
        return _decode(text)
    if end != len(text):
        return _decode(text)
    return obj


def dumps(obj: Any) -> str:
    """``obj`` as compact JSON text; TypeError/ValueError/RecursionError as ``json.dumps`` raises them."""
    if _encoder is None:  # pragma: no cover
        return _reference.encode(obj)
    if obj.__class__ is str:
        return json.encoder.encode_basestring(obj)
    return "".join(_encoder(obj, 0))


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """One JSON document from UTF-8 bytes (or text); ValueError (UnicodeDecodeError included) if it is not."""
    cls = data.__class__
    if cls is bytes:
        text = data.decode()  # type: ignore[union-attr]
        try:  # _whole(), written out: the common case in one frame
            obj, end = _scan(text, 0)
        except StopIteration:
            return _decode(text)
        return obj if end == len(text) else _decode(text)
    if cls is str:
        return _whole(data)  # type: ignore[arg-type]
    if isinstance(data, (bytearray, memoryview)):
        return _whole(bytes(data).decode())
    if isinstance(data, str):
        return _whole(str(data))
    raise TypeError(f"the JSON object must be str, bytes or bytearray, not {cls.__name__}")
