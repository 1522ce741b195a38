"""Protobuf wire-format primitives, for the few pfs messages sent or received in bulk.

betterproto (the message library of pachyderm-sdk) spends about 0.4 ms encoding or
decoding one small message in pure Python. Listings, exports and uploads move one
message per file, so the client layer (``pachd/wire.py``) and the local PFS server
(``localpfs/wire.py``) read and write those messages directly with these helpers.
"""
from __future__ import annotations

from typing import Iterator

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, nested messages)."""
    return varint(number << 3 | LEN) + varint(len(payload)) + payload


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of a message in ``buf[start:end]``.

    A varint's value is the integer; a length-delimited value is its (start, end)
    span in ``buf``; fixed-width values are skipped (None). A message cut short
    raises ValueError.
    """
    pos = start
    while pos < end:
        try:
            number, wire_type, value, pos = _next_field(buf, pos)
        except IndexError:
            pos = end + 1
        if pos > end:
            raise ValueError('truncated protobuf message')
        yield number, wire_type, value


def _next_field(buf: bytes, pos: int) -> tuple[int, int, object, int]:
    key, pos = read_varint(buf, pos)
    number, wire_type = key >> 3, key & 7
    if wire_type == VARINT:
        value, pos = read_varint(buf, pos)
        return number, wire_type, value, pos
    if wire_type == LEN:
        length, pos = read_varint(buf, pos)
        return number, wire_type, (pos, pos + length), pos + length
    if wire_type == FIXED64:
        return number, wire_type, None, pos + 8
    if wire_type == FIXED32:
        return number, wire_type, None, pos + 4
    raise ValueError(f'unsupported protobuf wire type {wire_type}')


def text(buf: bytes, span: tuple[int, int]) -> str:
    return bytes(buf[span[0]:span[1]]).decode('utf-8')
