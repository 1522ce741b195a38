"""The objects every provider is fed: same names, same bytes, whichever store holds them.

Pure standard library on purpose: the S3 stand-in's launcher imports this module
from a different virtualenv.
"""
import json

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
MEDIA_SIZE = 1024  # bytes per fake image: small, so the numbers measure per-object overhead
MEDIA_DIR = 'img'
TASK_DIR = 'tasks'


def media_key(i: int, batch: str = '') -> str:
    """``img/000042.png``; files added later for a re-sync carry a batch tag (``img/new_000042.png``)."""
    return f'{MEDIA_DIR}/{batch + "_" if batch else ""}{i:06d}.png'


def media_bytes(i: int, batch: str = '') -> bytes:
    # A distinct header per file, so a content-addressed store cannot fold them into one blob.
    head = PNG_SIGNATURE + i.to_bytes(8, 'big') + batch.encode()[:16].ljust(16, b'\0')
    return head + b'\x00' * (MEDIA_SIZE - len(head))


def task_key(i: int) -> str:
    return f'{TASK_DIR}/{i:06d}.json'


def task_bytes(i: int) -> bytes:
    """One task per file, in Label Studio's task format."""
    task = {'data': {'text': f'Review {i}: the parcel arrived on time and the box was intact.', 'source': 'bench',
                     'index': i}}
    return json.dumps(task).encode()


def objects(kind: str, start: int, count: int, batch: str = ''):
    """(key, bytes) pairs of one kind: 'media' or 'tasks'."""
    for i in range(start, start + count):
        if kind == 'media':
            yield media_key(i, batch), media_bytes(i, batch)
        elif kind == 'tasks':
            yield task_key(i), task_bytes(i)
        else:
            raise ValueError(f'unknown object kind {kind!r}')
