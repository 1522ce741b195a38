"""Content-addressed file contents, keyed by sha256.

Large contents are files under ``blobs/`` named by their digest. They are streamed into a
temporary file while being received and hashed, so no large file is ever held in memory,
and are moved into place (an atomic rename) only when the metadata referencing them is
committed. An abandoned upload just deletes its temporary files.

Small contents (up to ``INLINE_LIMIT`` bytes) live in the database instead (table
``small_blobs``): a file per annotation or thumbnail would cost several filesystem calls
each, which dominated writing many small files. Which store holds a content follows from
its size alone, so readers know where to look without asking.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from typing import BinaryIO, Optional

INLINE_LIMIT = 64 * 1024
COPY_BUFFER = 1024 * 1024

class BlobWriter:
    """Receives one file's content: kept in memory while small, spilled to a temporary
    file once it outgrows ``INLINE_LIMIT``. ``finish()`` returns (digest, size)."""

    def __init__(self, tmp_dir: str):
        self._tmp_dir = tmp_dir
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._file: Optional[BinaryIO] = None
        self.tmp_path: Optional[str] = None
        self.size = 0

    def write(self, data) -> None:
        if not data:
            return
        self._hash.update(data)
        self.size += len(data)
        if self._file is None:
            if len(self._buffer) + len(data) <= INLINE_LIMIT:
                self._buffer += data
                return
            self._open_file()
        self._file.write(data)

    def _open_file(self) -> None:
        fd, self.tmp_path = tempfile.mkstemp(dir=self._tmp_dir, prefix='upload-')
        self._file = os.fdopen(fd, 'wb')
        self._file.write(self._buffer)
        self._buffer = bytearray()

    def write_from(self, source: BinaryIO) -> None:
        while True:
            chunk = source.read(COPY_BUFFER)
            if not chunk:
                return
            self.write(chunk)

    def finish(self) -> tuple[bytes, int]:
        if self._file is not None:
            self._file.close()
        return self._hash.digest(), self.size

    @property
    def data(self) -> Optional[bytes]:
        """The content, when it stayed small enough to be kept in memory."""
        return bytes(self._buffer) if self._file is None else None

    def discard(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self.tmp_path:
            unlink_quietly(self.tmp_path)


class BlobStore:
    def __init__(self, root: str):
        self.blob_dir = os.path.join(root, 'blobs')
        self.tmp_dir = os.path.join(root, 'tmp')
        os.makedirs(self.blob_dir, exist_ok=True)
        os.makedirs(self.tmp_dir, exist_ok=True)

    def path(self, digest: bytes) -> str:
        name = digest.hex()
        return os.path.join(self.blob_dir, name[:2], name)

    def writer(self) -> BlobWriter:
        return BlobWriter(self.tmp_dir)

    def spill(self, data: bytes) -> str:
        """Write small content to a temporary file (to bound an upload's memory)."""
        fd, tmp_path = tempfile.mkstemp(dir=self.tmp_dir, prefix='spill-')
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        return tmp_path

    # -- committing (called inside the write transaction) -------------------------------
    def store_small(self, conn, digest: bytes, data: bytes) -> None:
        conn.execute('INSERT OR IGNORE INTO small_blobs(digest, data) VALUES (?, ?)', (digest, data))

    def publish(self, tmp_path: str, digest: bytes) -> None:
        """Move a finished upload into place (or drop it when that content is stored already)."""
        target = self.path(digest)
        if os.path.exists(target):
            unlink_quietly(tmp_path)
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(tmp_path, target)  # atomic: readers see no blob or the whole blob

    def exists(self, conn, digest: bytes, size: int) -> bool:
        if size <= INLINE_LIMIT:
            return conn.execute('SELECT 1 FROM small_blobs WHERE digest = ?', (digest,)).fetchone() is not None
        return os.path.exists(self.path(digest))

    # -- reading -------------------------------------------------------------------------
    def open(self, conn, digest: bytes, size: int) -> BinaryIO:
        """The content as a readable file; raises FileNotFoundError when it is gone."""
        if size <= INLINE_LIMIT:
            row = conn.execute('SELECT data FROM small_blobs WHERE digest = ?', (digest,)).fetchone()
            if row is None:
                raise FileNotFoundError(digest.hex())
            return io.BytesIO(row[0])
        return open(self.path(digest), 'rb')

    # -- housekeeping --------------------------------------------------------------------
    def clear_tmp(self) -> None:
        """Remove uploads left over by a process that stopped mid-stream."""
        for name in os.listdir(self.tmp_dir):
            unlink_quietly(os.path.join(self.tmp_dir, name))

    def remove_files_except(self, keep: set[str]) -> int:
        """Delete every blob file whose hex digest is not in ``keep``; return how many."""
        removed = 0
        for shard in os.listdir(self.blob_dir):
            shard_dir = os.path.join(self.blob_dir, shard)
            for name in os.listdir(shard_dir):
                if name not in keep:
                    unlink_quietly(os.path.join(shard_dir, name))
                    removed += 1
        return removed

    def remove_all(self) -> None:
        shutil.rmtree(self.blob_dir, ignore_errors=True)
        os.makedirs(self.blob_dir, exist_ok=True)


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
