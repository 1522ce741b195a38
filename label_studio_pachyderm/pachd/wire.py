"""Hand-encoded ModifyFile requests for the write path.

An export streams thousands of small files; building and serialising two
betterproto messages per file costs more than the rest of the write. These are
the same protobuf bytes (pfs_v2.ModifyFileRequest: add_file = 2, delete_file = 3;
AddFile: path = 1, raw = 3 as a google.protobuf.BytesValue; DeleteFile: path = 1),
checked against betterproto's own encoding in the tests.
"""
from __future__ import annotations


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def delete_file(path: str) -> bytes:
    return _field(3, _field(1, path.encode()))


def add_file(path: str, raw: bytes) -> bytes:
    bytes_value = _field(1, raw) if raw else b''
    return _field(2, _field(1, path.encode()) + _field(3, bytes_value))


def serialise(message) -> bytes:
    """Request serializer for ModifyFile: pre-encoded bytes pass through, messages are encoded."""
    return message if isinstance(message, bytes) else bytes(message)
