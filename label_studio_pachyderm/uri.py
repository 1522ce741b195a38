"""The one grammar for Pachyderm file URIs stored in tasks.

    pfs://<project>/<repo>@<commit>/<path>

``commit`` is the id of the commit the task was made from, so the labeling
screen always shows the bytes the task was created from, however the branch
moves later. ``path`` is relative to the repo root and kept as is (no
percent-encoding: Label Studio base64-encodes the whole URI for its proxy).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

SCHEME = 'pfs'

_NAME = r'[A-Za-z0-9_-]+'
_URI_RE = re.compile(
    rf'^{SCHEME}://(?P<project>{_NAME})/(?P<repo>{_NAME})@(?P<commit>[A-Za-z0-9_^~.-]+)/(?P<path>[^\x00]+)$'
)


@dataclass(frozen=True)
class PfsUri:
    project: str
    repo: str
    commit: str
    path: str  # relative to repo root, no leading slash

    def __str__(self) -> str:
        return f'{SCHEME}://{self.project}/{self.repo}@{self.commit}/{self.path}'


def build(project: str, repo: str, commit: str, path: str) -> str:
    return str(PfsUri(project or 'default', repo, commit, path.lstrip('/')))


def parse(uri: object) -> Optional[PfsUri]:
    """Return the parsed URI, or None for anything that is not a well-formed one.

    Never raises: Label Studio calls storage URL checks on arbitrary task data.
    A path with an empty, '.' or '..' segment is refused, so a URI cannot
    climb out of the storage's prefix.
    """
    if not isinstance(uri, str):
        return None
    match = _URI_RE.match(uri.strip())
    if not match:
        return None
    path = match['path']
    segments = path.split('/')
    if any(seg in ('', '.', '..') for seg in segments):
        return None
    return PfsUri(match['project'], match['repo'], match['commit'], path)


def path_in_prefix(path: str, prefix: str) -> bool:
    """True when ``path`` lies in the directory ``prefix`` (or is that very file)."""
    prefix = (prefix or '').strip('/')
    if not prefix:
        return True
    return path == prefix or path.startswith(prefix + '/')
