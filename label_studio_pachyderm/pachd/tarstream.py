"""Reading the files of a GetFileTAR answer as they arrive.

pachd sends a tar archive cut into BytesValue messages: a header and the content of each
file and directory, in path order. ``tar_files`` turns those messages back into
``(path, bytes)`` one file at a time, so memory holds one file (at most ``max_file_bytes``)
and never the archive.
"""
from __future__ import annotations

import io
import tarfile
from typing import Iterable, Iterator, Optional, Tuple

from .errors import PachdError
from .values import rel_path


class _MessageReader(io.RawIOBase):
    """A readable file over an iterator of byte strings."""

    def __init__(self, pieces: Iterable[bytes]):
        self._pieces = iter(pieces)
        self._piece = memoryview(b'')

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._piece:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._piece = memoryview(piece)
        count = min(len(buffer), len(self._piece))
        buffer[:count] = self._piece[:count]
        self._piece = self._piece[count:]
        return count


def tar_files(pieces: Iterable[bytes], max_file_bytes: int) -> Iterator[Tuple[str, Optional[bytes]]]:
    """``(relative path, content)`` for each regular file of the archive, in its order.

    A file larger than ``max_file_bytes`` comes as ``(path, None)``: its content is read
    past, not kept. An archive that breaks off, or is not one, raises PachdError.
    """
    reader = io.BufferedReader(_MessageReader(pieces), buffer_size=1024 * 1024)
    try:
        with tarfile.open(fileobj=reader, mode='r|') as archive:
            for member in archive:
                archive.members.clear()  # tarfile keeps every header it read; nothing here needs them
                if not member.isfile():
                    continue
                if member.size > max_file_bytes:
                    yield rel_path(member.name), None
                    continue
                yield rel_path(member.name), archive.extractfile(member).read()
    except tarfile.TarError as err:  # tarfile's own word for an archive cut short, too
        raise PachdError(f'pachd sent a file archive that cannot be read: {err}') from None
