"""PachdClient: pachd's PFS API as plain Python calls, with deadlines, mapped errors and no token leaks."""
from __future__ import annotations

import collections
import logging
import queue
import re
import threading
import time
from dataclasses import replace
from typing import Callable, Iterable, Iterator, Optional, Sequence, Tuple, Union

import grpc
from betterproto.lib.google.protobuf import BytesValue, Empty

from ._sdk import SdkClient, metadata as _metadata, pfs as _pfs, transaction as _txn
from . import channels
from .errors import (PachdAlreadyExists, PachdError, PachdInvalidArgument, PachdNotFound, PachdUnavailable,
                     connect_failed, map_error)
from . import wire
from .streams import FileStream, ServerStream
from .tarstream import tar_files
from .values import (DEFAULT_TIMEOUT, CommitInfo, DiffEntry, FileEntry, FileOp, PachdAddress, RepoInfo,
                     is_commit_id, parse_address, pfs_path, rel_path, timestamp)

logger = logging.getLogger(__name__)

WRITE_CHUNK = 1024 * 1024  # bytes of file data per ModifyFile message
HANDOVER_BYTES = 1024 * 1024  # a batch of write requests handed to gRPC's sending thread ...
HANDOVER_MESSAGES = 256  # ... is at most this big, or this many messages
# InspectFile answers for files of finished commits, kept per client (so per token): the
# storage proxy inspects the same commit-pinned file on every Range request of a video.
INSPECT_CACHE_SIZE = 1024
INSPECT_CACHE_SECONDS = 60.0  # bounds how long a dropped commit's file still looks present
FINISH_WAIT = 60.0  # seconds write_commit waits, at most, for pachd to finish a commit
RECONNECT_GRACE = 3.0  # seconds a call waits for a channel that lost pachd to reconnect

_TOKEN_CHARS = re.compile(r'^[\x21-\x7e]+$')  # what an HTTP/2 header value may carry


class _CallDetails(collections.namedtuple(
        '_CallDetails', ('method', 'timeout', 'metadata', 'credentials', 'wait_for_ready', 'compression')),
        grpc.ClientCallDetails):
    pass


class _AuthAndDeadline(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                       grpc.StreamUnaryClientInterceptor):
    """Adds the ``authn-token`` metadata to every call and a deadline to unary ones.

    The sdk's generated methods take no timeout. Streaming calls get no total
    deadline here (a long read or upload must not be cut off); ServerStream
    watches for their first message instead. A unary call that could not even
    connect is repeated once if the client sees pachd come back (see
    PachdClient._reconnected).
    """

    def __init__(self, token: Optional[str], timeout: float, client: 'PachdClient'):
        self._metadata = (('authn-token', token),) if token else ()
        self._timeout = timeout
        self._client = client

    def _details(self, details, timeout):
        metadata = list(details.metadata or ()) + list(self._metadata)
        if details.timeout is not None:
            timeout = details.timeout
        return _CallDetails(details.method, timeout, metadata, details.credentials,
                            details.wait_for_ready, getattr(details, 'compression', None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        details = self._details(client_call_details, self._timeout)
        outcome = continuation(details, request)
        if connect_failed(outcome) and self._client._reconnected():
            outcome = continuation(details, request)
        self._client._note_answer(outcome.code())
        return outcome

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details, None), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details, None), request_iterator)

    def __repr__(self) -> str:
        return f'<_AuthAndDeadline token={"set" if self._metadata else "none"} timeout={self._timeout}>'


class PachdClient:
    """A connection to one pachd, safe to share between threads."""

    def __init__(self, address: Union[str, PachdAddress], auth_token: Optional[str] = None,
                 root_certs: Optional[Union[bytes, str]] = None, timeout: float = DEFAULT_TIMEOUT,
                 dial_ips: 'tuple[str, ...]' = ()):
        """``dial_ips``: connect to these IP addresses (the ones the SSRF check approved) rather
        than resolve the host again; the host as written stays the HTTP/2 authority and the
        name the TLS certificate must carry."""
        parsed = parse_address(address)
        token = (auth_token or '').strip() or None
        if token is not None and not _TOKEN_CHARS.match(token):
            raise PachdInvalidArgument('the auth token contains characters a token cannot have (spaces, '
                                       'control or non-ASCII characters); paste it again')
        if isinstance(root_certs, str):
            root_certs = root_certs.encode()
        root_certs = root_certs or None
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        if not timeout > 0:
            raise PachdInvalidArgument(f'timeout must be a positive number of seconds, not {timeout!r}')
        # Root certificates imply TLS, as in the sdk and pachctl.
        self.address = replace(parsed, tls=True) if root_certs and not parsed.tls else parsed
        self.timeout = float(timeout)
        self._token = token
        self._closed = False
        self._reached = False  # has pachd ever answered on this channel?
        self._inspected: collections.OrderedDict = collections.OrderedDict()  # key -> (expiry, FileEntry)
        self._inspected_lock = threading.Lock()

        self._root_certs = root_certs
        self._dial_ips = tuple(dial_ips or ())
        target, extra = channels.dial_target(self.address, self._dial_ips)
        options = channels.channel_options(self._reconnect_grace()) + extra
        tls = channels.credentials(self.address, root_certs)
        if tls is not None:
            self._raw_channel = grpc.secure_channel(target, tls, options=options)
        else:
            self._raw_channel = grpc.insecure_channel(target, options=options)
        import weakref  # the interceptor must not keep the client alive (pachd/shared.py closes freed clients)

        self._channel = grpc.intercept_channel(self._raw_channel,
                                               _AuthAndDeadline(token, self.timeout, weakref.proxy(self)))
        self._sdk = SdkClient(self._channel, self.address.target)
        self._pfs = self._sdk.pfs
        # Streaming RPCs are called through our own multicallables rather than the
        # sdk's generator wrappers, so that we hold the call object and can cancel it.
        self._rpc_get_file = self._stream('GetFile', _pfs.GetFileRequest, BytesValue.FromString)
        self._rpc_get_file_tar = self._stream('GetFileTAR', _pfs.GetFileRequest, BytesValue.FromString)
        # FileInfo answers are read by pachd/wire.py (one message per listed file).
        self._rpc_list_file = self._stream('ListFile', _pfs.ListFileRequest, wire.file_info)
        self._rpc_walk_file = self._stream('WalkFile', _pfs.WalkFileRequest, wire.file_info)
        self._rpc_diff_file = self._stream('DiffFile', _pfs.DiffFileRequest, wire.diff_file_response)
        self._rpc_list_commit = self._stream('ListCommit', _pfs.ListCommitRequest, _pfs.CommitInfo.FromString)
        self._rpc_walk_subvenance = self._stream('WalkCommitSubvenance', _pfs.WalkCommitSubvenanceRequest,
                                                 _pfs.CommitInfo.FromString)
        self._rpc_list_repo = self._stream('ListRepo', _pfs.ListRepoRequest, _pfs.RepoInfo.FromString)
        self._rpc_list_project = self._stream('ListProject', _pfs.ListProjectRequest, _pfs.ProjectInfo.FromString)
        self._rpc_inspect_file = self._channel.unary_unary(
            '/pfs_v2.API/InspectFile', request_serializer=_pfs.InspectFileRequest.SerializeToString,
            response_deserializer=wire.file_info)
        self._rpc_modify_file = self._channel.stream_unary(
            '/pfs_v2.API/ModifyFile', request_serializer=wire.serialise,
            response_deserializer=Empty.FromString)
        self._rpc_wait_commit = self._channel.unary_unary(
            '/pfs_v2.API/InspectCommit', request_serializer=_pfs.InspectCommitRequest.SerializeToString,
            response_deserializer=_pfs.CommitInfo.FromString)

    def _stream(self, name, request_type, deserializer):
        return self._channel.unary_stream(
            f'/pfs_v2.API/{name}', request_serializer=request_type.SerializeToString,
            response_deserializer=deserializer)

    def __repr__(self) -> str:
        return (f'PachdClient({self.address.url}, auth={"token" if self._token else "none"}, '
                f'timeout={self.timeout:g})')

    def __reduce__(self):
        raise TypeError('PachdClient cannot be pickled (it holds a connection and a secret)')

    # -- plumbing
    def _error(self, exc: BaseException, project: Optional[str] = None, repo: Optional[str] = None,
               branch: Optional[str] = None, commits: tuple = (), path: Optional[str] = None) -> PachdError:
        def explain():
            return self._explain_not_found(project, repo, branch, commits, path)
        return map_error(exc, self.address.url, self._token, explain)

    def _explain_not_found(self, project, repo, branch, commits, path) -> Optional[PachdNotFound]:
        """Which of the objects named in a failed call is missing, asked in containment order.

        Only a NOT_FOUND answer counts as missing; any other answer (it exists, or
        the server cannot say) moves on to the next object.
        """
        def missing(call) -> bool:
            try:
                call()
            except grpc.RpcError as exc:
                code = exc.code() if callable(getattr(exc, 'code', None)) else None
                text = (exc.details() or '').lower() if code else ''
                return code == grpc.StatusCode.NOT_FOUND or (code == grpc.StatusCode.UNKNOWN and 'not found' in text)
            except Exception:
                return False
            return False

        if project and missing(lambda: self._pfs.inspect_project(project=_pfs.Project(name=project))):
            return PachdNotFound(f"project '{project}' not found on pachd at {self.address.url}",
                                 kind='project', name=project)
        if not repo:
            return None
        where = f"in project '{project}'"
        if missing(lambda: self._pfs.inspect_repo(repo=self._repo(project, repo))):
            return PachdNotFound(f"repo '{repo}' not found {where}", kind='repo', name=f'{project}/{repo}')
        if branch and missing(lambda: self._pfs.inspect_branch(branch=self._branch(project, repo, branch))):
            return PachdNotFound(f"branch '{branch}' not found in repo '{repo}' {where}",
                                 kind='branch', name=f'{project}/{repo}@{branch}')
        for ref in commits:
            if ref and missing(lambda: self._pfs.inspect_commit(commit=self._commit(project, repo, ref))):
                kind = 'commit' if is_commit_id(ref) else 'branch'
                return PachdNotFound(f"{kind} '{ref}' not found in repo '{repo}' {where}",
                                     kind=kind, name=f'{project}/{repo}@{ref}')
        if path is not None and commits:
            shown = pfs_path(path)
            return PachdNotFound(f"file '{shown}' not found in repo '{repo}' at '{commits[0]}' {where}",
                                 kind='file', name=f'{project}/{repo}@{commits[0]}:{shown}')
        return None

    @staticmethod
    def _repo(project: str, repo: str):
        return _pfs.Repo(name=repo, type='user', project=_pfs.Project(name=project))

    def _branch(self, project: str, repo: str, branch: str):
        return _pfs.Branch(repo=self._repo(project, repo), name=branch)

    def _commit(self, project: str, repo: str, ref: str):
        repo_msg = self._repo(project, repo)
        if is_commit_id(ref):
            return _pfs.Commit(repo=repo_msg, id=ref)
        return _pfs.Commit(repo=repo_msg, branch=_pfs.Branch(repo=repo_msg, name=ref))

    @staticmethod
    def _commit_picker(project: str, repo: str, commit_id: str):
        """pachd 2.12's way of naming a commit by id in its newer calls (walks, metadata)."""
        return _pfs.CommitPicker(id=_pfs.CommitPickerCommitByGlobalId(repo=_pfs.RepoPicker(
            name=_pfs.RepoPickerRepoName(project=_pfs.ProjectPicker(name=project), name=repo, type='user')),
            id=commit_id))

    def _iterate(self, rpc, request, **context) -> Iterator:
        """Messages of a server-streaming call, errors mapped; the call is cancelled when left early."""
        stream = ServerStream(self, rpc, request, context)
        try:
            yield from stream
        finally:
            stream.cancel()  # a no-op when the stream ended; otherwise pachd stops sending

    def _first(self, rpc, request, **context):
        messages = self._iterate(rpc, request, **context)
        try:
            return next(messages, None)
        finally:
            messages.close()

    def _note_answer(self, code) -> None:
        if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
            self._reached = True

    def _reconnect_grace(self) -> float:
        return min(self.timeout, RECONNECT_GRACE)

    def _reconnected(self) -> bool:
        """After a call failed to connect: wait briefly for the channel to reconnect.

        Between connection attempts gRPC fails calls at once with the last
        connection error, so right after pachd restarts the client would still
        report it unreachable. When pachd has answered on this channel before
        (it is probably coming back), wait up to RECONNECT_GRACE seconds for the
        channel to be ready and say whether it is. An address that never
        answered fails at once, without waiting.
        """
        if not self._reached or self._closed:
            return False
        ready = grpc.channel_ready_future(self._raw_channel)
        try:
            ready.result(timeout=self._reconnect_grace())
            return True
        except grpc.FutureTimeoutError:
            return False
        finally:
            ready.cancel()

    def _check_open(self):
        if self._closed:
            raise PachdError(f'the client for pachd at {self.address.url} is closed')

    # -- connection
    def check(self) -> str:
        """Reach pachd and make one authenticated call; return the server version ('' if unknown)."""
        self._check_open()
        version = ''
        try:
            v = self._sdk.get_version()
            if v.major or v.minor or v.micro:
                version = f'{v.major}.{v.minor}.{v.micro}{v.additional}'
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise self._error(exc) from None
        # GetVersion needs no token; listing projects does, so a bad token fails here.
        try:
            self._first(self._rpc_list_project, _pfs.ListProjectRequest())
        except PachdError as exc:
            if exc.code != 'UNIMPLEMENTED':
                raise
            self._first(self._rpc_list_repo, _pfs.ListRepoRequest(type='user'))
        return version

    # -- projects, repos, branches, commits
    def create_project(self, project: str, exist_ok: bool = True) -> None:
        try:
            self._pfs.create_project(project=_pfs.Project(name=project))
        except grpc.RpcError as exc:
            err = self._error(exc)
            if not (exist_ok and isinstance(err, PachdAlreadyExists)):
                raise err from None

    def inspect_repo(self, project: str, repo: str) -> RepoInfo:
        try:
            info = self._pfs.inspect_repo(repo=self._repo(project, repo))
        except grpc.RpcError as exc:
            raise self._error(exc, project, repo) from None
        return self._repo_info(info)

    def list_repos(self, project: Optional[str] = None) -> Iterator[RepoInfo]:
        """Repos of one project (or of all projects), as pachd lists them."""
        if project:
            try:
                self._pfs.inspect_project(project=_pfs.Project(name=project))
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise self._error(exc, project) from None
        request = _pfs.ListRepoRequest(type='user', projects=[_pfs.Project(name=project)] if project else [])
        for info in self._iterate(self._rpc_list_repo, request, project=project):
            yield self._repo_info(info)

    @staticmethod
    def _repo_info(info) -> RepoInfo:
        size = info.details.size_bytes if info.is_set('details') else info.size_bytes_upper_bound
        return RepoInfo(
            project=info.repo.project.name if info.repo.project else '', name=info.repo.name,
            description=info.description, size_bytes=int(size or 0),
            branches=tuple(b.name for b in info.branches), created=timestamp(info, 'created'),
        )

    def create_repo(self, project: str, repo: str, description: str = '', exist_ok: bool = False) -> None:
        try:
            self._pfs.create_repo(repo=self._repo(project, repo), description=description)
        except grpc.RpcError as exc:
            err = self._error(exc, project)
            if isinstance(err, PachdAlreadyExists):
                if exist_ok:
                    return
                err = PachdAlreadyExists(f"repo '{repo}' already exists in project '{project}'")
                err.code = 'ALREADY_EXISTS'
            raise err from None

    def branch_head(self, project: str, repo: str, branch: str) -> str:
        try:
            info = self._pfs.inspect_branch(branch=self._branch(project, repo, branch))
        except grpc.RpcError as exc:
            raise self._error(exc, project, repo, branch) from None
        return info.head.id

    def create_branch(self, project: str, repo: str, branch: str, head: Optional[str] = None,
                      provenance: Sequence[Tuple[str, str, str]] = ()) -> None:
        """Create (or move) the branch. ``provenance``: ``(project, repo, branch)`` of each branch it is
        computed from, as a pipeline's output branch is: pachd gives it an open commit for every new
        commit on those branches (``finish_open_commit`` fills and finishes one)."""
        request = {'branch': self._branch(project, repo, branch)}
        if head:
            request['head'] = self._commit(project, repo, head)
        if provenance:
            request['provenance'] = [self._branch(p_project, p_repo, p_branch)
                                     for p_project, p_repo, p_branch in provenance]
        try:
            self._pfs.create_branch(**request)
        except grpc.RpcError as exc:
            raise self._error(exc, project, repo, commits=(head,) if head else ()) from None

    def move_branches(self, moves: Sequence[Tuple[str, str, str, str]]) -> None:
        """Point each ``(project, repo, branch, commit id)`` branch at its commit, all in ONE pachd
        transaction (BatchTransaction): every branch moves, or none does. A branch that does not
        exist yet is created. Nothing is left open on pachd if this process dies meanwhile."""
        self._check_open()
        requests = [_txn.TransactionRequest(create_branch=_pfs.CreateBranchRequest(
            branch=self._branch(project, repo, branch), head=_pfs.Commit(repo=self._repo(project, repo), id=head)))
            for project, repo, branch, head in moves]
        if not requests:
            return
        try:
            self._sdk.transaction.batch_transaction(requests=requests)
        except grpc.RpcError as exc:
            project, repo, _, _ = moves[0]
            raise self._error(exc, project, repo) from None

    def inspect_commit(self, project: str, repo: str, commit: str) -> CommitInfo:
        try:
            info = self._pfs.inspect_commit(commit=self._commit(project, repo, commit))
        except grpc.RpcError as exc:
            raise self._error(exc, project, repo, commits=(commit,)) from None
        return self._commit_info(info, project, repo)

    def list_commits(self, project: str, repo: str, branch: Optional[str] = None,
                     limit: int = 0) -> Iterator[CommitInfo]:
        """Commits of the repo (or those reachable from the branch head), newest first."""
        request = _pfs.ListCommitRequest(repo=self._repo(project, repo), number=max(0, int(limit or 0)))
        if branch:
            request.to = self._commit(project, repo, branch)
        for info in self._iterate(self._rpc_list_commit, request, project=project, repo=repo, branch=branch):
            yield self._commit_info(info, project, repo)

    def commit_subvenance(self, project: str, repo: str, commits: list, max_depth: int = 0) -> Iterator[CommitInfo]:
        """The commits provenant on these commits of the repo, in any repo (pachd's WalkCommitSubvenance,
        breadth first, ``max_depth`` steps; 0: all): a pipeline's output commits of those inputs,
        reruns included. A pachd older than 2.8 answers UNIMPLEMENTED (a PachdError of that code)."""
        if not commits:
            return
        request = _pfs.WalkCommitSubvenanceRequest(start=[self._commit_picker(project, repo, c) for c in commits],
                                                   max_depth=max(0, int(max_depth or 0)))
        for info in self._iterate(self._rpc_walk_subvenance, request, project=project, repo=repo):
            yield self._commit_info(info, project, repo)

    @staticmethod
    def _commit_info(info, project: str, repo: str) -> CommitInfo:
        commit = info.commit
        branch = commit.branch.name if commit.is_set('branch') and commit.branch.name else None
        parent = info.parent_commit.id if info.is_set('parent_commit') and info.parent_commit.id else None
        size = info.details.size_bytes if info.is_set('details') else None
        return CommitInfo(
            id=commit.id, repo=commit.repo.name or repo,
            project=(commit.repo.project.name if commit.repo.project else '') or project,
            branch=branch, parent=parent, description=info.description,
            finished=info.is_set('finished'), started=timestamp(info, 'started'), size_bytes=size,
            error=info.error or '',
            provenance=tuple((((c.repo.project.name if c.repo.project else '') or project), c.repo.name, c.id)
                             for c in info.direct_provenance),
            metadata=tuple(sorted((info.metadata or {}).items())),
        )

    def set_commit_metadata(self, project: str, repo: str, commit: str, metadata: dict) -> None:
        """Set these keys of the commit's metadata (pachd 2.12's EditMetadata), all or none; other keys
        stay. A pachd older than 2.12 answers UNIMPLEMENTED (a PachdError of that code).

        One request of ``edit_key`` edits rather than a ``replace``: pachd applies a request's edits in
        one transaction, so the keys still change together, and a ``replace`` would also wipe keys that
        someone else (a pipeline, a person with pachctl) put on the same commit. ``edit_key`` adds a
        missing key and overwrites an existing one, so writing the same keys again is harmless."""
        picker = self._commit_picker(project, repo, commit)
        edits = [_metadata.Edit(commit=picker, edit_key=_metadata.EditEditKey(key=str(key), value=str(value)))
                 for key, value in sorted(metadata.items())]
        if not edits:
            return
        try:
            self._sdk.metadata.edit_metadata(edits=edits)
        except grpc.RpcError as exc:
            raise self._error(exc, project, repo, commits=(commit,)) from None

    def resolve_commit(self, project: str, repo: str, branch: str, commit: Optional[str] = None) -> str:
        """The commit a read should use: ``commit`` if given (checked to exist in the repo), else the branch head."""
        if not commit:
            return self.branch_head(project, repo, branch)
        if not is_commit_id(commit):
            raise PachdInvalidArgument(f"'{commit}' is not a commit id (32 hex digits)")
        return self.inspect_commit(project, repo, commit).id

    # -- reading
    def list_files(self, project: str, repo: str, commit: str, path: str = '',
                   recursive: bool = True, include_dirs: bool = False) -> Iterator[FileEntry]:
        """Files under ``path``, streamed as pachd sends them (a generator: nothing is held).

        Recursive listings walk the tree (WalkFile); others list one directory
        (ListFile). Directories are skipped unless ``include_dirs``. A path that
        does not exist raises PachdNotFound(kind='file') when walking; a flat
        listing of it is empty, as pachd answers.
        """
        request_file = _pfs.File(commit=self._commit(project, repo, commit), path=pfs_path(path))
        if recursive:
            rpc, request = self._rpc_walk_file, _pfs.WalkFileRequest(file=request_file)
        else:
            rpc, request = self._rpc_list_file, _pfs.ListFileRequest(file=request_file)
        context = dict(project=project, repo=repo, commits=(commit,), path=path)
        for info in self._iterate(rpc, request, **context):
            if info.is_dir and not (include_dirs and rel_path(info.path)):
                continue
            yield self._file_entry(info, commit)

    def list_files_by_directory(self, project: str, repo: str, commit: str, path: str = '',
                                recursive: bool = True) -> Iterator[FileEntry]:
        """The files ``list_files`` gives, in the same order, read one directory at a time (ListFile).

        For callers that stop after the first few (the files preview, "Check connection"). A
        WalkFile answer starts with the directory's own entry, whose size and hash cover every
        file below it, so a server may read the whole subtree (a million files) before it sends
        the first file; a directory's listing starts with its first child. A path that does not
        exist lists nothing.
        """
        for entry in self.list_files(project, repo, commit, path, recursive=False, include_dirs=True):
            if not entry.is_dir:
                yield entry
            elif recursive:
                yield from self.list_files_by_directory(project, repo, commit, entry.path)

    @staticmethod
    def _file_entry(info: wire.FileInfo, commit: str) -> FileEntry:
        return FileEntry(path=rel_path(info.path), size=info.size, hash=info.hash.hex(),
                         commit=info.commit_id or commit, is_dir=info.is_dir, committed=info.committed)

    def inspect_file(self, project: str, repo: str, commit: str, path: str) -> FileEntry:
        """The file (or directory) at ``path``; files of finished commits named by id are
        answered from a small cache, because they never change."""
        key = (project, repo, commit, pfs_path(path))
        entry = self._cached_entry(key)
        if entry is not None:
            return entry
        request_file = _pfs.File(commit=self._commit(project, repo, commit), path=pfs_path(path))
        try:
            info = self._rpc_inspect_file(_pfs.InspectFileRequest(file=request_file))
        except grpc.RpcError as exc:
            raise self._error(exc, project, repo, commits=(commit,), path=path) from None
        entry = self._file_entry(info, commit)
        if is_commit_id(commit) and entry.committed and not entry.is_dir:
            self._remember_entry(key, entry)
        return entry

    def _cached_entry(self, key) -> Optional[FileEntry]:
        with self._inspected_lock:
            hit = self._inspected.get(key)
            if hit is None:
                return None
            if hit[0] < time.monotonic():
                del self._inspected[key]
                return None
            self._inspected.move_to_end(key)
            return hit[1]

    def _remember_entry(self, key, entry: FileEntry) -> None:
        with self._inspected_lock:
            self._inspected[key] = (time.monotonic() + INSPECT_CACHE_SECONDS, entry)
            self._inspected.move_to_end(key)
            while len(self._inspected) > INSPECT_CACHE_SIZE:
                self._inspected.popitem(last=False)

    def read_file(self, project: str, repo: str, commit: str, path: str,
                  offset: int = 0, length: Optional[int] = None, entry: Optional[FileEntry] = None) -> 'FileStream':
        """Open a file for streaming from ``offset``, at most ``length`` bytes.

        The file is inspected now (missing files and directories fail here, and
        the stream knows the file's size), unless the caller passes the ``entry``
        it already inspected; the transfer starts on iteration.
        """
        if offset < 0 or (length is not None and length < 0):
            raise PachdInvalidArgument('offset and length must not be negative')
        if entry is None:
            entry = self.inspect_file(project, repo, commit, path)
        if entry.is_dir:
            raise PachdInvalidArgument(f"'{pfs_path(path)}' is a directory in {project}/{repo}@{commit}, not a file")
        available = max(0, entry.size - offset)
        length = available if length is None else min(length, available)
        # Read the exact commit that was inspected, even if ``commit`` named a branch that moves on.
        at = entry.commit if is_commit_id(entry.commit) else commit
        request = _pfs.GetFileRequest(file=_pfs.File(commit=self._commit(project, repo, at), path=pfs_path(path)),
                                      offset=offset)
        context = dict(project=project, repo=repo, commits=(at,), path=path)
        return FileStream(self, request, entry, offset, length, context)

    def get_file_bytes(self, project: str, repo: str, commit: str, path: str,
                       max_bytes: Optional[int] = None) -> bytes:
        """A whole (small) file; ``max_bytes`` refuses larger ones before reading."""
        with self.read_file(project, repo, commit, path) as stream:
            if max_bytes is not None and stream.size > max_bytes:
                raise PachdInvalidArgument(f"'{pfs_path(path)}' is {stream.size} bytes, more than {max_bytes}")
            return stream.read()

    def read_files(self, project: str, repo: str, commit: str, pattern: str, start: str = '',
                   max_file_bytes: int = 1024 * 1024) -> Iterator[tuple[str, Optional[bytes]]]:
        """``(path, content)`` of the files a path or glob matches, from ``start`` on, in path order.

        One GetFileTAR call streams them all, instead of a GetFile round trip per file. Files
        over ``max_file_bytes`` come as ``(path, None)``, their content not kept. A generator:
        closing it early cancels the call, so pachd sends no more than the reader took.
        """
        request = _pfs.GetFileRequest(file=_pfs.File(commit=self._commit(project, repo, commit), path=pfs_path(pattern)))
        if start:
            request.path_range = _pfs.PathRange(lower=pfs_path(start))
        context = dict(project=project, repo=repo, commits=(commit,), path=pattern)
        messages = self._iterate(self._rpc_get_file_tar, request, **context)
        try:
            yield from tar_files((message.value for message in messages), max_file_bytes)
        finally:
            messages.close()

    def diff(self, project: str, repo: str, old_commit: str, new_commit: str,
             path: str = '') -> Iterator[DiffEntry]:
        """Files added, modified or deleted under ``path`` from ``old_commit`` to ``new_commit``.

        An empty ``old_commit`` means "from nothing": every file of ``new_commit``
        is 'added' (pachd itself would diff against the new commit's parent).
        """
        if not old_commit:
            for entry in self.list_files(project, repo, new_commit, path):
                yield DiffEntry(path=entry.path, change='added', size=entry.size, hash=entry.hash)
            return
        request = _pfs.DiffFileRequest(
            new_file=_pfs.File(commit=self._commit(project, repo, new_commit), path=pfs_path(path)),
            old_file=_pfs.File(commit=self._commit(project, repo, old_commit), path=pfs_path(path)),
        )
        context = dict(project=project, repo=repo, commits=(new_commit, old_commit), path=path)
        for response in self._iterate(self._rpc_diff_file, request, **context):
            new, old = response
            new = new if new is not None and new.path else None
            old = old if old is not None and old.path else None
            info = new or old
            if info is None or info.is_dir:
                continue
            if new and old:
                yield DiffEntry(rel_path(new.path), 'modified', new.size, new.hash.hex())
            elif new:
                yield DiffEntry(rel_path(new.path), 'added', new.size, new.hash.hex())
            else:
                yield DiffEntry(rel_path(old.path), 'deleted', 0, '')

    # -- writing
    def write_commit(self, project: str, repo: str, branch: str, ops: Iterable[FileOp],
                     description: Union[str, Callable[[], str]] = '', create_branch: bool = True,
                     wait: bool = True, marker: str = '') -> str:
        """Apply ``ops`` to ``branch`` as ONE new commit and return its id.

        StartCommit on the branch (pachd creates the branch with its first
        commit unless ``create_branch`` is False), one streamed ModifyFile
        (puts in chunks of at most 1 MiB, deletes), FinishCommit; then, with
        ``wait``, up to FINISH_WAIT seconds for pachd to finish it.

        ``ops`` is consumed on the calling thread (gRPC sends from its own
        thread), so it may read Django models. ``description`` may be a callable:
        it is called after the ops are consumed and its result is set on
        FinishCommit, so it can describe what was written.

        All or nothing: if anything fails part-way (the ops iterable raises, pachd
        answers with an error, the connection drops), the open commit is dropped
        (DropCommitSet, else DropCommit) so the branch head is what it was before,
        and the mapped error (or the iterable's own exception) is raised. A
        half-written commit would trigger downstream pipelines on partial data;
        dropping it makes a retry the natural recovery.

        ``marker`` is a line put in the description from StartCommit on, so that a
        commit left open by a writer that died can be recognised (see
        ``unfinished_head``) and dropped by the next one.
        """
        self._check_open()
        if not create_branch:
            self.branch_head(project, repo, branch)  # raises PachdNotFound(kind='branch')

        def marked(text: str) -> str:
            return f'{text}\n{marker}' if marker and text else (marker or text)

        started_with = marked(description if isinstance(description, str) else '')
        try:
            started = self._pfs.start_commit(branch=self._branch(project, repo, branch), description=started_with)
        except grpc.RpcError as exc:
            err = self._error(exc, project, repo)
            if err.code == 'FAILED_PRECONDITION':
                # pachd refuses a commit on an unfinished one: a write in progress, or one cut short.
                err.args = (f'cannot start a commit on {project}/{repo}@{branch}: {err.args[0]} (another write '
                            'is in progress, or an earlier one was interrupted; if nothing is writing, drop the '
                            'unfinished commit)',)
            raise err from None
        commit_id = started.id
        commit = _pfs.Commit(repo=self._repo(project, repo), id=commit_id)
        try:
            self._modify_file(commit, ops)
            final = '' if isinstance(description, str) else marked(str(description() or ''))
            self._pfs.finish_commit(commit=commit, description=final)
        except BaseException as exc:
            problem = self._drop_commit(commit)
            if isinstance(exc, (grpc.RpcError, ConnectionError)):
                err = self._error(exc, project, repo, branch)
                if problem:
                    err.args = (f'{err} (and the unfinished commit {commit_id} could not be dropped: {problem})',)
                raise err from None
            if problem and hasattr(exc, 'add_note'):
                exc.add_note(f'the unfinished commit {commit_id} could not be dropped: {problem}')
            raise
        if wait:
            self._wait_finished(commit)
        return commit_id

    def _modify_file(self, commit, ops: Iterable[FileOp]) -> None:
        """One ModifyFile call whose requests are produced by this thread.

        gRPC pulls request messages on a thread of its own; the ops iterable may
        touch per-thread state (Django's DB connection), so it is iterated here
        and handed over through a small bounded queue. Requests travel in
        batches (up to HANDOVER_BYTES or HANDOVER_MESSAGES each): an export sends
        two small messages per file, and a queue round trip per message cost
        more than the messages. Back pressure: at most a few batches in flight.
        """
        handover: queue.Queue = queue.Queue(maxsize=4)
        stop = threading.Event()
        end = object()

        def requests():
            while True:
                try:
                    batch = handover.get(timeout=0.2)
                except queue.Empty:
                    if stop.is_set():
                        return
                    continue
                if batch is end:
                    return
                yield from batch

        call = self._rpc_modify_file.future(requests())
        stalled = []

        def send(item) -> bool:
            # gRPC takes messages only as fast as pachd accepts them (flow control): a pachd
            # that stopped reading leaves the queue full. That may last one timeout, no more.
            give_up = time.monotonic() + self.timeout
            while not call.done():
                try:
                    handover.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    if time.monotonic() > give_up:
                        stalled.append(True)
                        call.cancel()
                        return False
            return False

        try:
            sent_all = send([_pfs.ModifyFileRequest(set_commit=commit)])
            batch, size = [], 0
            for request in _modify_requests(ops) if sent_all else ():
                batch.append(request)
                size += len(request) if isinstance(request, bytes) else WRITE_CHUNK
                if size >= HANDOVER_BYTES or len(batch) >= HANDOVER_MESSAGES:
                    if not send(batch):
                        sent_all = False
                        break
                    batch, size = [], 0
            if sent_all and batch:
                sent_all = send(batch)
            if sent_all:
                send(end)
            if stalled:
                raise PachdUnavailable(f'pachd at {self.address.url} stopped taking data: nothing accepted for '
                                       f'{self.timeout:g} s (a frozen connection or an overloaded pachd)')
            try:
                call.result(timeout=self.timeout)  # raises the RpcError of a failed call
            except grpc.FutureTimeoutError:
                raise PachdUnavailable(f'pachd at {self.address.url} did not confirm the upload within '
                                       f'{self.timeout:g} s') from None
            if not sent_all:
                raise PachdError('pachd ended the upload before all files were sent')
        except BaseException:
            stop.set()
            call.cancel()
            raise
        finally:
            stop.set()

    def finish_open_commit(self, project: str, repo: str, commit_id: str, ops: Iterable[FileOp],
                           description: str = '', error: str = '') -> None:
        """Apply ``ops`` to the open commit ``commit_id`` (one streamed ModifyFile) and finish it: what a
        pipeline does with the output commit pachd opened for it. ``error`` finishes it as failed.

        Unlike ``write_commit``, a failure leaves the commit open rather than dropping it: it is not
        this client's commit, and dropping it would drop its whole commit set, the input commit
        included. The caller retries (puts overwrite, so writing the same ops again is harmless).
        A commit that is already finished raises pachd's FAILED_PRECONDITION (a PachdError)."""
        self._check_open()
        commit = _pfs.Commit(repo=self._repo(project, repo), id=commit_id)
        try:
            self._modify_file(commit, ops)
            self._pfs.finish_commit(commit=commit, description=description, error=error)
        except (grpc.RpcError, ConnectionError) as exc:
            raise self._error(exc, project, repo, commits=(commit_id,)) from None

    def unfinished_head(self, project: str, repo: str, branch: str) -> Optional[CommitInfo]:
        """The branch head if it is an unfinished commit (a write in progress, or one cut short), else None."""
        try:
            head = self.branch_head(project, repo, branch)
        except PachdNotFound as exc:
            if exc.kind == 'branch':
                return None
            raise
        info = self.inspect_commit(project, repo, head)
        return None if info.finished else info

    def drop_commit(self, project: str, repo: str, commit_id: str) -> None:
        """Drop a commit (an unfinished one left by a dead writer); the branch head moves back to its parent."""
        problem = self._drop_commit(_pfs.Commit(repo=self._repo(project, repo), id=commit_id))
        if problem:
            raise PachdError(f'cannot drop commit {commit_id} of {project}/{repo}: {problem}')

    def _drop_commit(self, commit) -> str:
        """Remove an unfinished (or just finished) commit; '' on success, else why not."""
        try:
            self._pfs.drop_commit_set(commit_set=_pfs.CommitSet(id=commit.id))
            return ''
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                return str(map_error(exc, self.address.url, self._token))
        try:
            self._pfs.drop_commit(commit=commit, recursive=True)
            return ''
        except grpc.RpcError as exc:
            return str(map_error(exc, self.address.url, self._token))

    def _wait_finished(self, commit) -> None:
        request = _pfs.InspectCommitRequest(commit=commit, wait=_pfs.CommitState.FINISHED)
        try:
            self._rpc_wait_commit(request, timeout=max(FINISH_WAIT, self.timeout))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                # Dropped after FinishCommit (pachd drops a finished commit when asked): what it
                # held is not on the branch, so the caller must not count it as written.
                raise PachdError(f'commit {commit.id} was dropped before pachd finished it; its changes are '
                                 'not on the branch') from None
            # Any other answer: the commit is durable; reads of it wait until pachd is done.
            logger.warning('commit %s was written but not yet finished by pachd at %s: %s',
                           commit.id, self.address.url, map_error(exc, self.address.url, self._token))

    def subscribe_commits(self, project: str, repo: str, branch: str, from_commit: Optional[str] = None,
                          state: str = 'FINISHED') -> 'CommitSubscription':
        """The commits of ``repo`` started on ``branch``, as each reaches ``state``, for as long as pachd is there.

        SubscribeCommit: the existing commits after ``from_commit`` (all of the branch's when
        None), oldest first, then each new one. Commits of every origin are sent (a pipeline's
        output commits too). ``state``: 'STARTED', 'FINISHING', 'FINISHED' or 'READY'.

        The stream has no deadline at all, neither for its first message nor between two (a
        branch may be quiet for hours); the channel's keepalive pings find a pachd that went
        away, and the iteration then raises PachdUnavailable. ``cancel()`` on the returned
        iterator, from any thread, ends the iteration.
        """
        wanted = getattr(_pfs.CommitState, str(state).upper(), None)
        if wanted is None or str(state).upper() == 'COMMIT_STATE_UNKNOWN':
            raise PachdInvalidArgument(f"state must be STARTED, FINISHING, FINISHED or READY, not {state!r}")
        request = _pfs.SubscribeCommitRequest(repo=self._repo(project, repo), branch=branch or '', state=wanted,
                                              all=True)
        if from_commit:
            if not is_commit_id(from_commit):
                raise PachdInvalidArgument(f"'{from_commit}' is not a commit id (32 hex digits)")
            request.from_ = _pfs.Commit(repo=self._repo(project, repo), id=from_commit)
        return CommitSubscription(self, request, project, repo, branch)

    def close(self) -> None:
        self._closed = True
        self._raw_channel.close()


def _modify_requests(ops: Iterable[FileOp]) -> Iterator:
    """ModifyFileRequest messages for ``ops``: a put is delete + add (pachd appends otherwise)."""
    for op in ops:
        if not isinstance(op, FileOp):
            raise TypeError(f'write_commit expects FileOp items, not {type(op).__name__}')
        path = pfs_path(op.path)
        if path == '/':
            raise PachdInvalidArgument('a file path is required (the repo root is not a file)')
        yield wire.delete_file(path)
        if op.delete:
            continue
        sent = False
        for chunk in _chunks(op.data):
            yield wire.add_file(path, chunk)
            sent = True
        if not sent:  # an empty file still exists
            yield wire.add_file(path, b'')


def _chunks(data) -> Iterator[bytes]:
    """``data`` as pieces of at most WRITE_CHUNK bytes; small pieces are packed together."""
    if data is None:
        return
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data).cast('B')
        for start in range(0, len(view), WRITE_CHUNK):
            yield bytes(view[start:start + WRITE_CHUNK])
        return
    if isinstance(data, str):
        raise TypeError('file data must be bytes, not str (encode it first)')
    if hasattr(data, 'read'):
        pieces = iter(lambda: data.read(WRITE_CHUNK), b'')
    else:
        pieces = iter(data)
    pending = bytearray()
    for piece in pieces:
        if not isinstance(piece, (bytes, bytearray, memoryview)):
            raise TypeError(f'file data chunks must be bytes, not {type(piece).__name__}')
        if not pending and len(piece) == WRITE_CHUNK:
            yield bytes(piece)
            continue
        pending += piece
        while len(pending) >= WRITE_CHUNK:
            yield bytes(pending[:WRITE_CHUNK])
            del pending[:WRITE_CHUNK]
    if pending:
        yield bytes(pending)


class CommitSubscription:
    """What ``PachdClient.subscribe_commits`` returns: an iterator of CommitInfo; ``cancel()`` from any thread."""

    def __init__(self, client: PachdClient, request, project: str, repo: str, branch: str):
        self._client = client
        self._project, self._repo = project, repo
        self._rpc = client._stream('SubscribeCommit', _pfs.SubscribeCommitRequest, _pfs.CommitInfo.FromString)
        # A quiet branch may send nothing for hours, also before its first commit: no bounds on
        # the messages; gRPC keepalive finds a dead pachd.
        self._stream = ServerStream(client, self._rpc, request,
                                    {'project': project, 'repo': repo, 'branch': branch or None},
                                    first_timeout=None, idle_timeout=None)

    def __iter__(self) -> 'CommitSubscription':
        return self

    def __next__(self) -> CommitInfo:
        return PachdClient._commit_info(next(self._stream), self._project, self._repo)

    def cancel(self) -> None:
        self._stream.cancel()

    def __enter__(self) -> 'CommitSubscription':
        return self

    def __exit__(self, *exc_info) -> None:
        self.cancel()
