"""The server's side of the bulk messages, written and read in the protobuf wire format.

betterproto (the sdk's message library) needs about 0.4 ms to encode or decode one FileInfo,
which would make a 100,000-file listing take most of a minute on the server alone. The
messages below use the primitives of ``protowire``; every other message goes through the
sdk's classes. Field numbers are those of pachyderm's
``pfs.proto`` (the sdk's generated ``pachyderm_sdk/api/pfs/__init__.py`` shows them too).
"""
from __future__ import annotations

import tarfile
from typing import Iterable, Iterator, Optional

from pachyderm_sdk.api import pfs

from ..protowire import LEN as _LEN, field as _field, fields as _fields, text as _text, varint


def timestamp(seconds_since_epoch: float) -> bytes:
    """google.protobuf.Timestamp {seconds = 1; nanos = 2}."""
    seconds = int(seconds_since_epoch)
    nanos = int(round((seconds_since_epoch - seconds) * 1e9))
    out = b''
    if seconds:
        out += b'\x08' + varint(seconds)
    if nanos:
        out += b'\x10' + varint(nanos)
    return out


def bytes_value(data) -> bytes:
    """google.protobuf.BytesValue {bytes value = 1}, the message GetFile streams."""
    return b'\x0a' + varint(len(data)) + bytes(data)


class FileInfoEncoder:
    """Encodes pfs.FileInfo for files of one commit: the commit part is encoded once.

    FileInfo {File file = 1; FileType file_type = 2; Timestamp committed = 3;
              int64 size_bytes = 4; bytes hash = 5}
    File {Commit commit = 1; string path = 2}
    """

    def __init__(self, commit: 'pfs.Commit', committed: Optional[float]):
        self._commit_field = _field(1, bytes(commit))
        self._committed_field = _field(3, timestamp(committed)) if committed else b''

    def encode(self, path: str, is_dir: bool, size: int, hash_: bytes) -> bytes:
        file_msg = self._commit_field + _field(2, path.encode('utf-8'))
        out = _field(1, file_msg) + (b'\x10\x02' if is_dir else b'\x10\x01') + self._committed_field
        if size:
            out += b'\x20' + varint(size)
        if hash_:
            out += _field(5, hash_)
        return out


TAR_BLOCK = 512


def tar_header(path: str, size: int, is_dir: bool) -> bytes:
    """One tar header as pachd writes it (``tarutil.NewHeader``: only name and size set,
    so mode, owner and mtime are 0; Go's tar writer makes a name ending in ``/`` a
    directory and uses ustar, or pax when a name does not fit). Names keep pachd's
    leading slash."""
    info = tarfile.TarInfo(path)
    info.size = 0 if is_dir else size
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0
    info.mtime = 0
    info.uname = info.gname = ''
    return info.tobuf(tarfile.PAX_FORMAT, 'utf-8', 'surrogateescape')


def tar_padding(size: int) -> bytes:
    return b'\0' * (-size % TAR_BLOCK)


# Go's tar.Writer.Close: two zero blocks, no padding to a 10 KiB record (Python's
# tarfile would add that padding, so the archive is written here block by block).
TAR_END = b'\0' * (2 * TAR_BLOCK)


def chunked(pieces: Iterable[bytes], chunk: int) -> Iterator[bytes]:
    """Join small pieces and split large ones into BytesValue messages of about ``chunk`` bytes."""
    pending, size = [], 0
    for piece in pieces:
        if not piece:
            continue
        pending.append(piece)
        size += len(piece)
        if size >= chunk:
            data = b''.join(pending)
            for start in range(0, len(data) - chunk + 1, chunk):
                yield bytes_value(data[start:start + chunk])
            rest = data[len(data) - len(data) % chunk:]
            pending, size = ([rest], len(rest)) if rest else ([], 0)
    if pending:
        yield bytes_value(b''.join(pending))


def diff_file_response(new: Optional[bytes], old: Optional[bytes]) -> bytes:
    """DiffFileResponse {FileInfo new_file = 1; FileInfo old_file = 2}."""
    return (_field(1, new) if new is not None else b'') + (_field(2, old) if old is not None else b'')


# ----------------------------------------------------------------------------- decoding
def decode_modify_file(buf: bytes) -> tuple:
    """Decode one ModifyFileRequest into a tuple the service dispatches on.

    ModifyFileRequest {oneof body {Commit set_commit = 1; AddFile add_file = 2;
                                   DeleteFile delete_file = 3; CopyFile copy_file = 4}}
    AddFile {string path = 1; string datum = 2; oneof source {BytesValue raw = 3;
             AddFileUrlSource url = 4}}
    DeleteFile {string path = 1; string datum = 2}

    Raw content is returned as a memoryview into ``buf``: chunks of up to ~20 MB are
    written to disk without being copied.
    """
    view = memoryview(buf)
    for number, wire_type, span in _fields(buf, 0, len(buf)):
        if wire_type != _LEN:
            continue
        if number == 1:
            return ('set_commit', pfs.Commit.FromString(bytes(view[span[0]:span[1]])))
        if number == 2:
            path, data, url, datum = '', None, None, ''
            for sub, sub_type, sub_span in _fields(buf, *span):
                if sub == 1 and sub_type == _LEN:
                    path = _text(buf, sub_span)
                elif sub == 2 and sub_type == _LEN:
                    datum = _text(buf, sub_span)
                elif sub == 3 and sub_type == _LEN:
                    data = view[0:0]
                    for inner, inner_type, inner_span in _fields(buf, *sub_span):
                        if inner == 1 and inner_type == _LEN:
                            data = view[inner_span[0]:inner_span[1]]
                elif sub == 4 and sub_type == _LEN:
                    url = pfs.AddFileUrlSource.FromString(bytes(view[sub_span[0]:sub_span[1]])).url
            if url is not None:
                return ('add_url', path, url, datum)
            return ('add_file', path, data if data is not None else view[0:0], datum)
        if number == 3:
            path = ''
            for sub, sub_type, sub_span in _fields(buf, *span):
                if sub == 1 and sub_type == _LEN:
                    path = _text(buf, sub_span)
            return ('delete_file', path)
        if number == 4:
            return ('copy_file', pfs.CopyFile.FromString(bytes(view[span[0]:span[1]])))
    return ('empty',)
