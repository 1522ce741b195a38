"""Sample data for the demo: a few generated images in images@master and an empty labels repo.

The images are drawn here (no downloads): coloured boxes on a plain background,
something worth drawing a bounding box around.
"""
from __future__ import annotations

import struct
import sys
import zlib

from . import pachd

SHAPES = [
    ('red-square.png', (220, 40, 40), (40, 40, 140, 140)),
    ('green-wide.png', (40, 170, 60), (20, 70, 220, 150)),
    ('blue-tall.png', (40, 80, 220), (90, 20, 150, 220)),
    ('orange-corner.png', (240, 140, 20), (150, 150, 230, 230)),
]


def png(width: int, height: int, colour, box) -> bytes:
    """A PNG of ``width`` x ``height`` with a filled ``box`` (x0, y0, x1, y1) in ``colour``."""
    x0, y0, x1, y1 = box
    rows = []
    for y in range(height):
        row = bytearray(b'\x00')  # filter type: none
        for x in range(width):
            row += bytes(colour) if x0 <= x < x1 and y0 <= y < y1 else b'\xf0\xf0\xf0'
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header)
            + chunk(b'IDAT', zlib.compress(b''.join(rows), 9)) + chunk(b'IEND', b''))


def seed(address: str, token: str | None = None) -> str:
    """Create images@master (unless it has files already) and an empty labels repo."""
    client = pachd.PachdClient(address, auth_token=token)
    for repo in ('images', 'labels'):
        try:
            client.create_repo('default', repo, description='label-studio-pachyderm demo')
        except pachd.PachdAlreadyExists:
            pass
    try:
        head = client.branch_head('default', 'images', 'master')
        return f'images@master already holds data (commit {head}); reusing it'
    except pachd.PachdNotFound:
        pass
    ops = [pachd.FileOp.put(name, png(256, 256, colour, box)) for name, colour, box in SHAPES]
    commit = client.write_commit('default', 'images', 'master', ops, description='demo images')
    return f'put {len(ops)} images into images@master (commit {commit}); labels is empty'


if __name__ == '__main__':
    print(seed(sys.argv[1] if len(sys.argv) > 1 else 'grpc://127.0.0.1:30650'))
