"""The pachd client layer: the only module that imports ``pachyderm_sdk``.

Everything else in the plugin talks to Pachyderm through :class:`PachdClient`
and sees plain Python types (str, int, bytes, dataclasses) and the exceptions
defined here. Messages of those exceptions never contain the auth token.

Paths: every path this layer returns is relative to the repo root and has no
leading slash (``cats/1.jpg``). Paths passed in may have a leading slash or not.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

DEFAULT_PORT = 30650
DEFAULT_TIMEOUT = 10.0  # seconds, for unary calls and the first message of a stream


# ----------------------------------------------------------------------------- errors
class PachdError(Exception):
    """Base class. ``str(err)`` is a message a person can act on, token-free."""


class PachdUnavailable(PachdError):
    """pachd cannot be reached (refused, DNS, TLS handshake, deadline exceeded)."""


class PachdAuthError(PachdError):
    """Token missing, wrong or expired (UNAUTHENTICATED), or PERMISSION_DENIED."""


class PachdNotFound(PachdError):
    """A project, repo, branch, commit or file does not exist.

    ``kind`` is one of 'project', 'repo', 'branch', 'commit', 'file'; ``name``
    names the missing object (e.g. 'default/images@master').
    """

    def __init__(self, message: str, kind: str = '', name: str = ''):
        super().__init__(message)
        self.kind = kind
        self.name = name


class PachdInvalidArgument(PachdError):
    """Bad address, bad name, bad path, or pachd said INVALID_ARGUMENT."""


class PachdAlreadyExists(PachdError):
    """The object to create exists already."""


# ----------------------------------------------------------------------------- value types
@dataclass(frozen=True)
class PachdAddress:
    host: str
    port: int
    tls: bool

    @property
    def url(self) -> str:
        return f"{'grpcs' if self.tls else 'grpc'}://{self.host}:{self.port}"


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to repo root, no leading slash
    size: int
    hash: str  # hex of pachd's file hash ('' when pachd gives none)
    commit: str  # id of the commit the entry was listed from
    is_dir: bool = False
    committed: Optional[_dt.datetime] = None


@dataclass(frozen=True)
class DiffEntry:
    path: str
    change: str  # 'added' | 'modified' | 'deleted'
    size: int  # new size; 0 for 'deleted'
    hash: str  # new hash; '' for 'deleted'


@dataclass(frozen=True)
class CommitInfo:
    id: str
    repo: str
    project: str
    branch: Optional[str]
    parent: Optional[str]
    description: str
    finished: bool
    started: Optional[_dt.datetime] = None


@dataclass(frozen=True)
class RepoInfo:
    project: str
    name: str
    description: str
    size_bytes: int
    branches: tuple = ()


@dataclass(frozen=True)
class FileOp:
    """One operation of a write: put ``data`` at ``path``, or delete ``path``.

    ``data`` is bytes or an iterable of byte chunks (streamed, never joined).
    """

    path: str
    data: object = None  # bytes | Iterable[bytes] | None
    delete: bool = False

    @classmethod
    def put(cls, path: str, data) -> 'FileOp':
        return cls(path=path, data=data)

    @classmethod
    def remove(cls, path: str) -> 'FileOp':
        return cls(path=path, delete=True)


def parse_address(address: str) -> PachdAddress:
    """Parse ``grpc://h:p``, ``grpcs://h:p``, ``h:p`` or ``h`` (port 30650).

    Raises PachdInvalidArgument with a message naming what is wrong.
    """
    raise NotImplementedError


class PachdClient:
    """A connection to one pachd, safe to share between threads."""

    def __init__(self, address: str, auth_token: Optional[str] = None,
                 root_certs: Optional[bytes] = None, timeout: float = DEFAULT_TIMEOUT):
        raise NotImplementedError

    # -- connection
    def check(self) -> str:
        """Reach pachd and make one authenticated call; return the server version ('' if unknown)."""
        raise NotImplementedError

    # -- projects, repos, branches, commits
    def create_project(self, project: str, exist_ok: bool = True) -> None: ...
    def inspect_repo(self, project: str, repo: str) -> RepoInfo: ...
    def list_repos(self, project: Optional[str] = None) -> Iterator[RepoInfo]: ...
    def create_repo(self, project: str, repo: str, description: str = '', exist_ok: bool = False) -> None: ...
    def branch_head(self, project: str, repo: str, branch: str) -> str: ...
    def create_branch(self, project: str, repo: str, branch: str, head: Optional[str] = None) -> None: ...
    def inspect_commit(self, project: str, repo: str, commit: str) -> CommitInfo: ...
    def list_commits(self, project: str, repo: str, branch: Optional[str] = None,
                     limit: int = 0) -> Iterator[CommitInfo]: ...
    def resolve_commit(self, project: str, repo: str, branch: str, commit: Optional[str] = None) -> str: ...

    # -- reading
    def list_files(self, project: str, repo: str, commit: str, path: str = '',
                   recursive: bool = True) -> Iterator[FileEntry]: ...
    def inspect_file(self, project: str, repo: str, commit: str, path: str) -> FileEntry: ...
    def read_file(self, project: str, repo: str, commit: str, path: str,
                  offset: int = 0, length: Optional[int] = None) -> 'FileStream': ...
    def get_file_bytes(self, project: str, repo: str, commit: str, path: str) -> bytes: ...
    def diff(self, project: str, repo: str, old_commit: str, new_commit: str,
             path: str = '') -> Iterator[DiffEntry]: ...

    # -- writing
    def write_commit(self, project: str, repo: str, branch: str, ops: Iterable[FileOp],
                     description: str = '', create_branch: bool = True) -> str: ...
    def close(self) -> None: ...


class FileStream:
    """A file being read from pachd: iterate ``iter_chunks(n)``; ``close()`` cancels the RPC."""

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]: ...
    def read(self) -> bytes: ...
    def close(self) -> None: ...


def get_client(address: str, auth_token: Optional[str] = None, root_certs: Optional[bytes] = None,
               timeout: Optional[float] = None) -> PachdClient:
    """A process-wide cached client per (address, token, root_certs, timeout)."""
    raise NotImplementedError
