"""The client's side of the bulk messages, in the protobuf wire format.

An export streams thousands of small files and a listing returns one FileInfo per
file; building or parsing a betterproto message per file cost more than the rest of
the work. These functions produce and read the same bytes (checked against the sdk's
own classes in the tests), with the field numbers of pachyderm's ``pfs.proto``:

* ModifyFileRequest: add_file = 2, delete_file = 3;
  AddFile: path = 1, raw = 3 (a google.protobuf.BytesValue); DeleteFile: path = 1.
* FileInfo: file = 1, file_type = 2, committed = 3 (a google.protobuf.Timestamp),
  size_bytes = 4, hash = 5; File: commit = 1, path = 2; Commit: id = 2.
* DiffFileResponse: new_file = 1, old_file = 2.
"""
from __future__ import annotations

import datetime as _dt
from typing import NamedTuple, Optional

from ..protowire import LEN, VARINT, field, fields, text

FILE_TYPE_DIR = 2  # pfs.FileType.DIR


def delete_file(path: str) -> bytes:
    return field(3, field(1, path.encode()))


def add_file(path: str, raw: bytes) -> bytes:
    bytes_value = field(1, raw) if raw else b''
    return field(2, field(1, path.encode()) + field(3, bytes_value))


def serialise(message) -> bytes:
    """Request serializer for ModifyFile: pre-encoded bytes pass through, messages are encoded."""
    return message if isinstance(message, bytes) else bytes(message)


class FileInfo(NamedTuple):
    """What the client reads of a pfs.FileInfo."""
    path: str
    file_type: int
    committed: Optional[_dt.datetime]  # None when pachd sent no commit time (an open commit)
    size: int
    hash: bytes
    commit_id: str  # '' when the message names no commit

    @property
    def is_dir(self) -> bool:
        return self.file_type == FILE_TYPE_DIR


def file_info(buf: bytes) -> FileInfo:
    """Response deserializer for InspectFile, ListFile and WalkFile."""
    return _file_info(buf, 0, len(buf))


def _file_info(buf: bytes, start: int, end: int) -> FileInfo:
    path, file_type, committed, size, hash_, commit_id = '', 0, None, 0, b'', ''
    for number, wire_type, value in fields(buf, start, end):
        if number == 1 and wire_type == LEN:  # File
            for sub, sub_type, sub_value in fields(buf, *value):
                if sub == 2 and sub_type == LEN:
                    path = text(buf, sub_value)
                elif sub == 1 and sub_type == LEN:  # Commit
                    for inner, inner_type, inner_value in fields(buf, *sub_value):
                        if inner == 2 and inner_type == LEN:
                            commit_id = text(buf, inner_value)
        elif number == 2 and wire_type == VARINT:
            file_type = value
        elif number == 3 and wire_type == LEN:
            committed = _timestamp(buf, *value)
        elif number == 4 and wire_type == VARINT:
            size = value - (1 << 64) if value >= 1 << 63 else value  # int64
        elif number == 5 and wire_type == LEN:
            hash_ = bytes(buf[value[0]:value[1]])
    return FileInfo(path, file_type, committed, size, hash_, commit_id)


def _timestamp(buf: bytes, start: int, end: int) -> _dt.datetime:
    seconds = nanos = 0
    for number, wire_type, value in fields(buf, start, end):
        if number == 1 and wire_type == VARINT:
            seconds = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 2 and wire_type == VARINT:
            nanos = value
    return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc) + _dt.timedelta(microseconds=nanos // 1000)


def diff_file_response(buf: bytes) -> tuple[Optional[FileInfo], Optional[FileInfo]]:
    """Response deserializer for DiffFile: (new file, old file), either may be absent."""
    new = old = None
    for number, wire_type, value in fields(buf, 0, len(buf)):
        if number == 1 and wire_type == LEN:
            new = _file_info(buf, *value)
        elif number == 2 and wire_type == LEN:
            old = _file_info(buf, *value)
    return new, old
