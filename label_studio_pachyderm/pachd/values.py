"""Plain values the pachd layer hands out and takes in, and pachd addresses."""
from __future__ import annotations

import datetime as _dt
import ipaddress
import re
from dataclasses import dataclass
from typing import Optional

from .errors import PachdInvalidArgument

DEFAULT_PORT = 30650
DEFAULT_TIMEOUT = 10.0  # seconds, for unary calls and the first message of a stream

_ACCEPTED_FORMS = 'use grpc://host:port, grpcs://host:port (TLS), host:port or host (port 30650)'
_COMMIT_ID = re.compile(r'^[0-9a-f]{32}$')


@dataclass(frozen=True)
class PachdAddress:
    host: str  # IPv6 literals without brackets
    port: int
    tls: bool

    @property
    def url(self) -> str:
        return f"{'grpcs' if self.tls else 'grpc'}://{self.target}"

    @property
    def identity(self) -> str:
        """The one name of the server this address reaches, however it was spelled.

        ``127.0.0.1:650``, ``grpc://LOCALHOST:650`` and ``http://[::1]:650`` are one
        pachd, so they get one identity: the scheme only as plain or TLS, the port
        always written, IP literals in their short form, and every loopback
        name as ``localhost``. Whatever must be per-pachd (a branch's one writer,
        where a stored token may be sent, a watch subscription) keys on this.
        """
        host = self.host
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if host in ('localhost', 'localhost.localdomain', 'ip6-localhost') or (ip is not None and ip.is_loopback):
            host = 'localhost'
        elif ip is not None:
            host = ip.compressed
        host = f'[{host}]' if ':' in host else host
        return f"{'grpcs' if self.tls else 'grpc'}://{host}:{self.port}"

    @property
    def target(self) -> str:
        """``host:port`` as gRPC dials it (IPv6 in brackets)."""
        host = f'[{self.host}]' if ':' in self.host else self.host
        return f'{host}:{self.port}'


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
    size_bytes: Optional[int] = None
    # Why the commit failed, as its writer said in FinishCommit; '' for a good (or open) commit.
    error: str = ''
    # The commits it was computed from (pachd's direct provenance): ((project, repo, id), ...).
    provenance: tuple = ()
    # pachd's commit metadata (2.12's metadata API), ((key, value), ...) sorted by key; a tuple,
    # not a dict, so the record stays hashable. ``dict(info.metadata)`` reads it as a map.
    metadata: tuple = ()

    @property
    def good(self) -> bool:
        """Finished, and without an error: its files are complete and may be read."""
        return self.finished and not self.error


@dataclass(frozen=True)
class RepoInfo:
    project: str
    name: str
    description: str
    size_bytes: int
    branches: tuple = ()
    created: Optional[_dt.datetime] = None


@dataclass(frozen=True)
class FileOp:
    """One operation of a write: put ``data`` at ``path``, or delete ``path``.

    ``data`` is bytes or an iterable of byte chunks (streamed, never joined), or a
    binary file object (read in chunks).
    """

    path: str
    data: object = None  # bytes | Iterable[bytes] | binary file | None
    delete: bool = False

    @classmethod
    def put(cls, path: str, data) -> 'FileOp':
        return cls(path=path, data=data)

    @classmethod
    def remove(cls, path: str) -> 'FileOp':
        return cls(path=path, delete=True)


@dataclass(frozen=True)
class PachConfigContext:
    """The active context of a ``pachctl`` config file."""

    name: str
    address: str
    token: Optional[str] = None
    root_certs: Optional[bytes] = None
    project: Optional[str] = None

    def __repr__(self) -> str:  # the session token stays out of logs and tracebacks
        return f'PachConfigContext(name={self.name!r}, address={self.address!r}, project={self.project!r})'


def parse_address(address: str) -> PachdAddress:
    """Parse ``grpc://h:p``, ``grpcs://h:p``, ``h:p`` or ``h`` (port 30650).

    ``http://`` and ``https://`` are accepted as the sdk does (plain and TLS).
    Raises PachdInvalidArgument with a message naming what is wrong.
    """
    if isinstance(address, PachdAddress):
        return address
    text = (address or '').strip() if isinstance(address, str) else ''

    def bad(problem: str, show: bool = True) -> PachdInvalidArgument:
        shown = f' {text!r}' if show and text else ''
        return PachdInvalidArgument(f'invalid pachd address{shown}: {problem}; {_ACCEPTED_FORMS}')

    if not text:
        raise bad('it is empty')
    if any(c.isspace() for c in text):
        raise bad('it contains white space')
    scheme, sep, rest = text.partition('://')
    if not sep:
        scheme, rest = 'grpc', text
    scheme = scheme.lower()
    if scheme not in ('grpc', 'grpcs', 'http', 'https'):
        raise bad(f'unsupported scheme {scheme!r}')
    netloc, _, tail = rest.partition('/')
    if '@' in netloc:
        # Never echo it: user-info is where people paste passwords and tokens.
        raise bad('user name or password in the address is not supported (give the token separately)', show=False)
    if '?' in rest:
        raise bad('a query (?...) is not allowed')
    if '#' in rest:
        raise bad('a fragment (#...) is not allowed')
    if tail:
        raise bad(f'a path (/{tail}) is not allowed')
    if not netloc:
        raise bad('the host is empty')
    if netloc.startswith('['):
        literal, bracket, after = netloc[1:].partition(']')
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise bad('the IPv6 address in brackets is not valid') from None
        if not bracket or (after and not after.startswith(':')):
            raise bad('the IPv6 address in brackets is not valid')
        host, port_text = literal.lower(), after[1:] if after else None
    elif netloc.count(':') > 1:
        raise bad('write an IPv6 address in brackets, e.g. [::1]:30650')
    else:
        host, colon, port_text = netloc.partition(':')
        host = host.lower()
        if not colon:
            port_text = None
        if not host:
            raise bad('the host is empty')
        if not re.fullmatch(r'[a-z0-9_.-]+', host) or host.startswith(('.', '-')):
            raise bad(f'{host!r} is not a valid host name')
    if port_text == '':
        raise bad('the port is empty')
    port = DEFAULT_PORT
    if port_text is not None:
        if not re.fullmatch(r'[0-9]{1,5}', port_text) or not 1 <= int(port_text) <= 65535:
            raise bad('the port must be a number from 1 to 65535')
        port = int(port_text)
    return PachdAddress(host=host, port=port, tls=scheme in ('grpcs', 'https'))


def address_identity(address: str) -> str:
    """``parse_address(address).identity``; text that is no valid address is its own identity (stripped)."""
    try:
        return parse_address(address).identity
    except PachdInvalidArgument:
        return (address or '').strip() if isinstance(address, str) else ''


# The characters pachd reads as a glob in a path (and refuses in the paths of files it writes).
GLOB_CHARACTERS = '*?[]{}!()@+^'


def pfs_path(path: str) -> str:
    """A PFS path for a request: '/' + relative path ('' is the repo root)."""
    return '/' + (path or '').strip().lstrip('/')


def rel_path(path: str) -> str:
    return (path or '').strip('/')


def timestamp(message, name: str) -> Optional[_dt.datetime]:
    return getattr(message, name) if message.is_set(name) else None


def is_commit_id(ref: str) -> bool:
    return bool(_COMMIT_ID.match(ref or ''))
