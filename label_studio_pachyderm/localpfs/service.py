"""gRPC handlers for ``pfs_v2.API``, ``transaction_v2.API``, ``versionpb_v2.API`` and ``auth_v2.API/WhoAmI``
(``metadata.API`` is in ``metadata.py``).

Each handler turns the sdk's request message into store calls and the result back into the
sdk's response message (or, for the bulk streams, into bytes from ``wire``). Store errors
become gRPC statuses carrying pachd's code and wording. Methods not listed here answer
UNIMPLEMENTED with a message naming the method (see ``UnimplementedHandler``).
"""
from __future__ import annotations

import datetime as _dt
import functools
import logging
import threading
from typing import Callable, Iterator, Optional

import betterproto
import grpc
from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import auth as auth_api
from pachyderm_sdk.api import pfs
from pachyderm_sdk.api import transaction as txn_api
from pachyderm_sdk.api.version import Version

from . import errors, names, pickers, wire
from .errors import PFSError
from .store import ORIGIN_AUTO, ORIGIN_USER, BranchRec, CommitRec, CommitRef, CommitRow, RepoRec, Store
from .transactions import Transactions, transaction_id_of
from .tree import Entry
from .upload import Upload
from .urls import fetch_url

log = logging.getLogger('label_studio_pachyderm.localpfs')

GET_FILE_CHUNK = 2 * 1024 * 1024  # bytes per GetFile message (the sdk accepts up to 20 MB)
MAX_PAGE = 100000  # pachd's limit for ListFile/WalkFile ``number``
CANCEL_GRACE_SECONDS = 0.05  # see _cancelled_after_end
VERSION = Version(major=2, minor=12, micro=0, additional='-localpfs')


# ----------------------------------------------------------------------------- conversions
# pachd's origin filter: ``all``, or ORIGIN_KIND_UNKNOWN, lets every commit through (but
# ALIAS commits, which do not exist here); USER or AUTO keep only that kind.
_ORIGINS = {pfs.OriginKind.USER: ORIGIN_USER, pfs.OriginKind.AUTO: ORIGIN_AUTO}


def _time(ts: Optional[float]) -> Optional[_dt.datetime]:
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc) if ts else None


def _cancelled_after_end(context, ended: threading.Event) -> bool:
    """Whether a client stream that just ended was in fact cancelled (a crash, a reset).

    pachd applies a ModifyFile stream only when the client closes it; a cancelled one changes
    nothing. grpcio reports a cancel as an ordinary end of the request stream when it handles
    the stream's last read before the call's close, which follows within milliseconds (7 ms
    at most in 2,000 cancels on a 2-core machine with 3 busy processes). So the end is taken
    as a close only once that much has passed without the call ending.
    """
    return ended.wait(CANCEL_GRACE_SECONDS) or not context.is_active()


def _is_set(message) -> bool:
    return message is not None and betterproto.serialized_on_wire(message)


def _repo_names(repo: Optional[pfs.Repo]) -> tuple[str, str]:
    if repo is None or not repo.name:
        raise errors.InvalidArgument('repo must be specified')
    project = (repo.project.name if repo.project else '') or names.DEFAULT_PROJECT
    if repo.type and repo.type != names.USER_REPO_TYPE:
        # only user repos exist here (meta and spec repos belong to pipelines)
        raise errors.repo_not_found(f'{project}/{repo.name}.{repo.type}')
    return project, repo.name


def _transaction_id(transaction: Optional[txn_api.Transaction]) -> str:
    # a missing transaction is pachd's empty id: ``transactions  not found``
    return transaction.id if transaction is not None else ''


def _project_name(project: Optional[pfs.Project]) -> str:
    return (project.name if project else '') or names.DEFAULT_PROJECT


def _commit_ref(commit: Optional[pfs.Commit]) -> CommitRef:
    if commit is None:
        raise errors.InvalidArgument('commit must be specified')
    branch = commit.branch if _is_set(commit.branch) else None
    repo = commit.repo if _is_set(commit.repo) and commit.repo.name else (branch.repo if branch else None)
    if repo is None or not repo.name:
        raise errors.InvalidArgument('cannot resolve commit with no repo')
    project, name = _repo_names(repo)
    return CommitRef(project, name, commit.id or '', branch.name if branch else '')


def _optional_commit_ref(commit: Optional[pfs.Commit], default_repo: pfs.Repo) -> Optional[CommitRef]:
    """A commit given as an option (a parent, a branch head): None when it names nothing;
    without a repo of its own it is taken to be in ``default_repo``."""
    if not _is_set(commit) or not (commit.id or (commit.branch and commit.branch.name)):
        return None
    has_repo = (_is_set(commit.repo) and commit.repo.name) or (
        _is_set(commit.branch) and commit.branch.repo and commit.branch.repo.name)
    if not has_repo:
        commit = pfs.Commit(repo=default_repo, id=commit.id, branch=commit.branch)
    return _commit_ref(commit)


def _repo_msg(project: str, name: str) -> pfs.Repo:
    return pfs.Repo(name=name, type=names.USER_REPO_TYPE, project=pfs.Project(name=project))


def _commit_msg(project: str, repo: str, commit_id: str, branch: Optional[str] = None) -> pfs.Commit:
    """A commit as pachd 2.11+ answers with it: repo and id, ``branch`` always empty.

    The branch a commit was started on is kept here (SubscribeCommit filters on it, as
    pachd does internally), but since 2.11 pachd clears ``Commit.branch`` in every
    response (StartCommit, CommitInfo.commit/parent_commit/child_commits, BranchInfo.head,
    FileInfo.file.commit), so no client can rely on it.
    """
    return pfs.Commit(repo=_repo_msg(project, repo), id=commit_id)


def _row_commit_msg(row: CommitRow) -> pfs.Commit:
    return _commit_msg(row.project, row.repo, row.id, row.branch)


def _commit_info(rec: CommitRec) -> pfs.CommitInfo:
    row = rec.row
    info = pfs.CommitInfo(
        commit=_row_commit_msg(row),
        origin=pfs.CommitOrigin(kind=pfs.OriginKind.AUTO if row.origin == ORIGIN_AUTO else pfs.OriginKind.USER),
        description=row.description,
        started=_time(row.started),
        created_at=_time(row.started),
        error=row.error,
        child_commits=[_commit_msg(row.project, row.repo, cid, cbranch) for cid, cbranch in rec.children],
        direct_provenance=[_commit_msg(project, repo, cid) for project, repo, cid in rec.provenance],
        metadata=dict(rec.metadata),
    )
    if rec.parent is not None:
        info.parent_commit = _commit_msg(row.project, row.repo, *rec.parent)
    if row.finished is not None:
        info.finishing = info.finished = info.updated_at = _time(row.finished)
        info.size_bytes_upper_bound = row.size or 0
        info.details = pfs.CommitInfoDetails(size_bytes=row.size or 0)
    else:
        info.updated_at = _time(row.started)
    return info


def _repo_info(rec: RepoRec) -> pfs.RepoInfo:
    return pfs.RepoInfo(
        repo=_repo_msg(rec.project, rec.name),
        created=_time(rec.created),
        size_bytes_upper_bound=rec.size,
        description=rec.description,
        branches=[pfs.Branch(repo=_repo_msg(rec.project, rec.name), name=b) for b in rec.branches],
        details=pfs.RepoInfoDetails(size_bytes=rec.size),
    )


def _branch_info(rec: BranchRec) -> pfs.BranchInfo:
    return pfs.BranchInfo(
        branch=pfs.Branch(repo=_repo_msg(rec.project, rec.repo), name=rec.name),
        head=_commit_msg(rec.project, rec.repo, rec.head_id, rec.head_branch),
        created_at=_time(rec.created),
        updated_at=_time(rec.updated),
        direct_provenance=[_branch_msg(*key) for key in rec.direct_provenance],
        provenance=[_branch_msg(*key) for key in rec.provenance],
        subvenance=[_branch_msg(*key) for key in rec.subvenance],
    )


def _branch_msg(project: str, repo: str, name: str) -> pfs.Branch:
    return pfs.Branch(repo=_repo_msg(project, repo), name=name)


def _project_info(rec) -> pfs.ProjectInfo:
    return pfs.ProjectInfo(project=pfs.Project(name=rec.name), description=rec.description,
                           created_at=_time(rec.created))


def _file_encoder(row: CommitRow) -> Callable[[Entry], bytes]:
    encoder = wire.FileInfoEncoder(_row_commit_msg(row), row.finished)
    return lambda entry: encoder.encode(entry.path, entry.is_dir, entry.size, entry.hash)


def _paginate(entries: Iterator[Entry], marker: Optional[pfs.File], number: int, reverse: bool) -> Iterator[Entry]:
    if number < 0 or number > MAX_PAGE:
        raise errors.InvalidArgument(f'cannot return more than {MAX_PAGE} files at a time')
    if reverse and number == 0:
        raise errors.InvalidArgument('number must be > 0 when reverse is true')
    after = before = None
    if _is_set(marker) and marker.path:
        key = '/' + marker.path.strip('/')
        if reverse:
            before = key
        else:
            after = key
    if reverse:
        window: list[Entry] = []
        for entry in entries:
            if before is not None and (entry.path.rstrip('/') or '/') >= before:
                break
            window.append(entry)
            if len(window) > number:
                del window[0]
        yield from reversed(window)
        return
    sent = 0
    for entry in entries:
        if after is not None and (entry.path.rstrip('/') or '/') <= after:
            continue
        yield entry
        sent += 1
        if number and sent >= number:
            return


# ----------------------------------------------------------------------------- error mapping
def _abort(context: grpc.ServicerContext, err: PFSError) -> None:
    context.abort(getattr(grpc.StatusCode, err.code), err.message)


def _internal(context: grpc.ServicerContext, method: str, exc: Exception) -> None:
    log.exception('localpfs: %s failed', method)
    context.abort(grpc.StatusCode.INTERNAL, f'localpfs: {method} failed: {exc}')


def _unary(method: Callable) -> Callable:
    @functools.wraps(method)
    def handler(self, request, context):
        try:
            return method(self, request, context)
        except PFSError as err:
            _abort(context, err)
        except Exception as exc:  # a bug here must still reach the client as a status
            _internal(context, method.__name__, exc)
    return handler


def _stream(method: Callable) -> Callable:
    @functools.wraps(method)
    def handler(self, request, context):
        try:
            yield from method(self, request, context)
        except PFSError as err:
            _abort(context, err)
        except Exception as exc:
            _internal(context, method.__name__, exc)
    return handler


# ----------------------------------------------------------------------------- the service
class PfsService:
    def __init__(self, store: Store, auth_enabled: bool = False):
        self.store = store
        self.auth_enabled = auth_enabled
        # the writes a transaction may hold, each applied as its own call applies it
        self.transactions = Transactions(store, {
            'create_repo': self._create_repo,
            'finish_commit': self._finish_commit,
            'create_branch': self._create_branch,
            'delete_branch': self._delete_branch,
        })

    def _appended(self, context, request: txn_api.TransactionRequest) -> Optional[txn_api.TransactionResponse]:
        """With ``pach-transaction`` in the call's metadata, ``request`` goes into that
        transaction instead of being applied (its response from the dry run is returned);
        without it, None: the caller applies the request itself."""
        txn_id = transaction_id_of(context.invocation_metadata())
        if txn_id is None:
            return None
        return self.transactions.append(txn_id, request)

    def _refused_in_transaction(self, context, request: txn_api.TransactionRequest) -> None:
        """For the writes localpfs does not hold in a transaction: inside one, the append fails
        (UNIMPLEMENTED, or the transaction's own error), so the call never runs outside it."""
        self._appended(context, request)

    # -- projects ------------------------------------------------------------------------
    @_unary
    def CreateProject(self, request: pfs.CreateProjectRequest, context) -> Empty:
        self.store.create_project(_project_name(request.project), request.description, request.update)
        return Empty()

    @_unary
    def InspectProject(self, request: pfs.InspectProjectRequest, context) -> pfs.ProjectInfo:
        return _project_info(self.store.inspect_project(_project_name(request.project)))

    @_unary
    def InspectProjectV2(self, request: pfs.InspectProjectV2Request, context) -> pfs.InspectProjectV2Response:
        info = _project_info(self.store.inspect_project(_project_name(request.project)))
        return pfs.InspectProjectV2Response(info=info, defaults_json='{}')

    @_stream
    def ListProject(self, request: pfs.ListProjectRequest, context) -> Iterator[pfs.ProjectInfo]:
        for rec in self.store.list_projects():
            yield _project_info(rec)

    @_unary
    def DeleteProject(self, request: pfs.DeleteProjectRequest, context) -> Empty:
        self.store.delete_project(_project_name(request.project), request.force)
        return Empty()

    # -- repos ---------------------------------------------------------------------------
    @_unary
    def CreateRepo(self, request: pfs.CreateRepoRequest, context) -> Empty:
        if self._appended(context, txn_api.TransactionRequest(create_repo=request)) is None:
            self._create_repo(request)
        return Empty()

    def _create_repo(self, request: pfs.CreateRepoRequest) -> None:
        self.store.create_repo(*_repo_names(request.repo), request.description, request.update)

    @_unary
    def InspectRepo(self, request: pfs.InspectRepoRequest, context) -> pfs.RepoInfo:
        return _repo_info(self.store.inspect_repo(*_repo_names(request.repo)))

    @_stream
    def ListRepo(self, request: pfs.ListRepoRequest, context) -> Iterator[pfs.RepoInfo]:
        if request.type and request.type != names.USER_REPO_TYPE:
            return
        projects = [_project_name(p) for p in request.projects]
        for rec in self.store.list_repos(projects or None):
            yield _repo_info(rec)

    @_unary
    def DeleteRepo(self, request: pfs.DeleteRepoRequest, context) -> pfs.DeleteRepoResponse:
        self._refused_in_transaction(context, txn_api.TransactionRequest(delete_repo=request))
        return pfs.DeleteRepoResponse(deleted=self.store.delete_repo(*_repo_names(request.repo), request.force))

    @_unary
    def DeleteRepos(self, request: pfs.DeleteReposRequest, context) -> pfs.DeleteReposResponse:
        deleted = self.store.delete_repos([_project_name(p) for p in request.projects], request.all, request.force)
        return pfs.DeleteReposResponse(repos=[_repo_msg(p, n) for p, n in deleted])

    # -- commits -------------------------------------------------------------------------
    @_unary
    def StartCommit(self, request: pfs.StartCommitRequest, context) -> pfs.Commit:
        self._refused_in_transaction(context, txn_api.TransactionRequest(start_commit=request))
        if not _is_set(request.branch) or not request.branch.name:
            raise errors.InvalidArgument('branch must be specified')
        project, repo = _repo_names(request.branch.repo)
        parent = _optional_commit_ref(request.parent, request.branch.repo)
        row = self.store.start_commit(project, repo, request.branch.name, parent, request.description)
        return _row_commit_msg(row)

    @_unary
    def FinishCommit(self, request: pfs.FinishCommitRequest, context) -> Empty:
        if self._appended(context, txn_api.TransactionRequest(finish_commit=request)) is None:
            self._finish_commit(request)
        return Empty()

    def _finish_commit(self, request: pfs.FinishCommitRequest) -> None:
        self.store.finish_commit(_commit_ref(request.commit), request.description, request.error)

    @_unary
    def InspectCommit(self, request: pfs.InspectCommitRequest, context) -> pfs.CommitInfo:
        wait = request.wait in (pfs.CommitState.FINISHING, pfs.CommitState.FINISHED)
        ready = request.wait == pfs.CommitState.READY
        context.add_callback(self.store.wake_waiters)  # a cancelled wait ends at once
        rec = self.store.inspect_commit(_commit_ref(request.commit), wait, context.is_active, ready)
        return _commit_info(rec)

    @_stream
    def ListCommit(self, request: pfs.ListCommitRequest, context) -> Iterator[pfs.CommitInfo]:
        project, repo = _repo_names(request.repo)
        to = _commit_ref(request.to) if _is_set(request.to) else None
        from_ = _commit_ref(request.from_) if _is_set(request.from_) else None
        origin = 0 if request.all else _ORIGINS.get(request.origin_kind, 0)
        for rec in self.store.list_commits(project, repo, request.number, request.reverse, to, from_, origin):
            yield _commit_info(rec)

    @_stream
    def SubscribeCommit(self, request: pfs.SubscribeCommitRequest, context) -> Iterator[pfs.CommitInfo]:
        project, repo = _repo_names(request.repo)
        from_ = None
        if _is_set(request.from_) and (request.from_.id or (request.from_.branch and request.from_.branch.name)):
            from_ = _optional_commit_ref(request.from_, request.repo)
            if (from_.project, from_.repo) != (project, repo):
                # pachd: errors.Errorf in subscribeCommit, so code UNKNOWN
                raise errors.Unknown(f'the `from` commit needs to be from repo {project}/{repo}')
        state = {pfs.CommitState.FINISHING: 'finishing', pfs.CommitState.FINISHED: 'finished',
                 pfs.CommitState.READY: 'ready'}.get(request.state, 'started')
        origin = 0 if request.all else _ORIGINS.get(request.origin_kind, 0)
        # A call that ends (cancelled, the client gone) wakes its sleeping handler at once.
        for rec in self.store.subscribe_commits(project, repo, request.branch, from_, state, origin,
                                                context.is_active, on_end=context.add_callback):
            yield _commit_info(rec)

    @_stream
    def InspectCommitSet(self, request: pfs.InspectCommitSetRequest, context) -> Iterator[pfs.CommitInfo]:
        for rec in self.store.inspect_commit_set(request.commit_set.id, request.wait, context.is_active):
            yield _commit_info(rec)

    @_stream
    def WalkCommitProvenance(self, request: pfs.WalkCommitProvenanceRequest, context) -> Iterator[pfs.CommitInfo]:
        yield from self._walk(request, upstream=True)

    @_stream
    def WalkCommitSubvenance(self, request: pfs.WalkCommitSubvenanceRequest, context) -> Iterator[pfs.CommitInfo]:
        yield from self._walk(request, upstream=False)

    def _walk(self, request, upstream: bool) -> Iterator[pfs.CommitInfo]:
        starts = [pickers.commit(picker) for picker in request.start]
        for rec in self.store.walk_commits(starts, upstream, request.max_depth, request.max_commits):
            yield _commit_info(rec)

    @_unary
    def DropCommitSet(self, request: pfs.DropCommitSetRequest, context) -> Empty:
        self.store.drop_commit_set(request.commit_set.id)
        return Empty()

    @_unary
    def DropCommit(self, request: pfs.DropCommitRequest, context) -> pfs.DropCommitResponse:
        self.store.drop_commit(_commit_ref(request.commit), request.recursive)
        return pfs.DropCommitResponse()

    @_unary
    def ClearCommit(self, request: pfs.ClearCommitRequest, context) -> Empty:
        self.store.clear_commit(_commit_ref(request.commit))
        return Empty()

    @_unary
    def SquashCommitSet(self, request: pfs.SquashCommitSetRequest, context) -> Empty:
        self._refused_in_transaction(context, txn_api.TransactionRequest(squash_commit_set=request))
        self.store.squash_commit_set(request.commit_set.id)
        return Empty()

    @_unary
    def SquashCommit(self, request: pfs.SquashCommitRequest, context) -> pfs.SquashCommitResponse:
        self.store.squash_commit(_commit_ref(request.commit), request.recursive)
        return pfs.SquashCommitResponse()

    @_stream
    def ListCommitSet(self, request: pfs.ListCommitSetRequest, context) -> Iterator[pfs.CommitSetInfo]:
        project = request.project.name if _is_set(request.project) and request.project.name else None
        for recs in self.store.list_commit_sets(project):
            yield pfs.CommitSetInfo(commit_set=pfs.CommitSet(id=recs[0].row.id),
                                    commits=[_commit_info(rec) for rec in recs])

    @_stream
    def FindCommits(self, request: pfs.FindCommitsRequest, context) -> Iterator[pfs.FindCommitsResponse]:
        for kind, row, searched in self.store.find_commits(_commit_ref(request.start), request.file_path,
                                                           request.limit):
            if kind == 'found':
                yield pfs.FindCommitsResponse(found_commit=_row_commit_msg(row), commits_searched=searched)
            else:
                yield pfs.FindCommitsResponse(last_searched_commit=_row_commit_msg(row), commits_searched=searched)

    @_stream
    def Fsck(self, request: pfs.FsckRequest, context) -> Iterator[pfs.FsckResponse]:
        # pachd streams one FsckResponse per problem and nothing when all is well; ``fix``
        # and the zombie checks concern provenance and pipeline outputs, absent here
        for problem in self.store.fsck():
            yield pfs.FsckResponse(error=problem)

    # -- branches ------------------------------------------------------------------------
    @_unary
    def CreateBranch(self, request: pfs.CreateBranchRequest, context) -> Empty:
        if self._appended(context, txn_api.TransactionRequest(create_branch=request)) is None:
            self._create_branch(request)
        return Empty()

    def _create_branch(self, request: pfs.CreateBranchRequest) -> None:
        if not _is_set(request.branch) or not request.branch.name:
            raise errors.InvalidArgument('branch must be specified')
        if _is_set(request.trigger) and (request.trigger.branch or request.trigger.cron_spec
                                         or request.trigger.size or request.trigger.commits):
            if request.provenance:
                raise errors.Unknown('a branch cannot have both provenance and a trigger')
            raise errors.Unimplemented('localpfs does not implement branch triggers')
        project, repo = _repo_names(request.branch.repo)
        head = _optional_commit_ref(request.head, request.branch.repo)
        provenance_of = None
        if request.provenance:
            provenance_of = []
            for prov in request.provenance:
                if not prov.name:
                    raise errors.InvalidArgument('branch must be specified')
                provenance_of.append((*_repo_names(prov.repo), prov.name))
        self.store.create_branch(project, repo, request.branch.name, head, provenance_of)

    @_unary
    def InspectBranch(self, request: pfs.InspectBranchRequest, context) -> pfs.BranchInfo:
        project, repo = _repo_names(request.branch.repo)
        return _branch_info(self.store.inspect_branch(project, repo, request.branch.name))

    @_stream
    def ListBranch(self, request: pfs.ListBranchRequest, context) -> Iterator[pfs.BranchInfo]:
        for rec in self.store.list_branches(*_repo_names(request.repo), request.reverse):
            yield _branch_info(rec)

    @_unary
    def DeleteBranch(self, request: pfs.DeleteBranchRequest, context) -> Empty:
        if self._appended(context, txn_api.TransactionRequest(delete_branch=request)) is None:
            self._delete_branch(request)
        return Empty()

    def _delete_branch(self, request: pfs.DeleteBranchRequest) -> None:
        project, repo = _repo_names(request.branch.repo)
        self.store.delete_branch(project, repo, request.branch.name, request.force)

    # -- writing files -------------------------------------------------------------------
    def ModifyFile(self, request_iterator, context) -> Empty:
        upload: Optional[Upload] = None
        applied = False
        ended = threading.Event()
        context.add_callback(ended.set)  # runs when the call is over, at once on a cancel
        try:
            for op in request_iterator:
                kind = op[0]
                if kind == 'set_commit':
                    if upload is not None:
                        raise errors.InvalidArgument('set_commit may only be sent once, as the first message')
                    upload = Upload(self.store, _commit_ref(op[1]))
                    continue
                if kind == 'empty':
                    continue
                if upload is None:
                    raise errors.InvalidArgument('the first ModifyFile message must be set_commit')
                if kind == 'add_file':
                    upload.add(op[1], op[2], op[3])
                elif kind == 'delete_file':
                    upload.delete(op[1])
                elif kind == 'copy_file':
                    copy = op[1]
                    upload.copy(copy.dst, _commit_ref(copy.src.commit), copy.src.path, copy.append, copy.datum)
                elif kind == 'add_url':
                    fetched = False
                    for chunk in fetch_url(op[2], context.is_active):
                        upload.add(op[1], chunk, op[3])
                        fetched = True
                    if not fetched:  # an empty body still makes the file, as in pachd
                        upload.add(op[1], b'', op[3])
            if upload is not None:
                if _cancelled_after_end(context, ended):
                    return Empty()  # the client is gone: what it sent is dropped
                upload.commit()
                applied = True
            return Empty()
        except PFSError as err:
            _abort(context, err)
        except grpc.RpcError:
            # the client cancelled or broke the stream: nothing of it is applied
            return Empty()
        except Exception as exc:
            _internal(context, 'ModifyFile', exc)
        finally:
            if upload is not None and not applied:
                upload.abort()

    # -- reading files -------------------------------------------------------------------
    @_stream
    def GetFile(self, request: pfs.GetFileRequest, context) -> Iterator[bytes]:
        if request.url:
            raise errors.Unimplemented('localpfs does not write files to URLs; read the content from the stream')
        if request.offset < 0:
            raise errors.InvalidArgument(f'offset must not be negative (got {request.offset})')
        with self.store.reading(_commit_ref(request.file.commit)) as view:
            entry = view.file(request.file.path)
            handle = view.open(entry)  # opened inside the read transaction: safe from drops
        with handle:
            if request.offset:
                handle.seek(request.offset)
            while True:
                chunk = handle.read(GET_FILE_CHUNK)
                if not chunk:
                    return
                yield wire.bytes_value(chunk)

    @_stream
    def GetFileTAR(self, request: pfs.GetFileRequest, context) -> Iterator[bytes]:
        """A tar stream of the files and directories under a path or glob, as pachd's
        GetFileTAR writes it (src/server/pfs/server/api_server.go ``getFileTar`` and
        fileset.WriteTarEntry): one entry per file and directory in path order, names
        absolute, then the end-of-archive blocks."""
        if request.url:
            raise errors.Unimplemented('localpfs does not write files to URLs; read the content from the stream')
        lower = upper = None
        if _is_set(request.path_range):
            lower, upper = request.path_range.lower or None, request.path_range.upper or None
        with self.store.reading(_commit_ref(request.file.commit)) as view:
            yield from wire.chunked(self._tar_pieces(view, request.file.path, lower, upper), GET_FILE_CHUNK)

    @staticmethod
    def _tar_pieces(view, path: str, lower: Optional[str], upper: Optional[str]) -> Iterator[bytes]:
        for entry in view.tar_entries(path, lower or ''):
            if upper is not None and entry.path >= upper:
                break
            yield wire.tar_header(entry.path, entry.size, entry.is_dir)
            if entry.is_dir:
                continue
            with view.open(entry) as handle:
                while True:
                    data = handle.read(GET_FILE_CHUNK)
                    if not data:
                        break
                    yield data
            yield wire.tar_padding(entry.size)
        yield wire.TAR_END

    @_unary
    def InspectFile(self, request: pfs.InspectFileRequest, context) -> bytes:
        with self.store.reading(_commit_ref(request.file.commit)) as view:
            return _file_encoder(view.commit)(view.inspect(request.file.path))

    @_stream
    def ListFile(self, request: pfs.ListFileRequest, context) -> Iterator[bytes]:
        with self.store.reading(_commit_ref(request.file.commit)) as view:
            encode = _file_encoder(view.commit)
            entries = view.list(request.file.path)
            for entry in _paginate(entries, request.pagination_marker, request.number, request.reverse):
                yield encode(entry)

    @_stream
    def WalkFile(self, request: pfs.WalkFileRequest, context) -> Iterator[bytes]:
        with self.store.reading(_commit_ref(request.file.commit)) as view:
            encode = _file_encoder(view.commit)
            entries = view.walk(request.file.path)
            for entry in _paginate(entries, request.pagination_marker, request.number, request.reverse):
                yield encode(entry)

    @_stream
    def GlobFile(self, request: pfs.GlobFileRequest, context) -> Iterator[bytes]:
        lower = upper = None
        if _is_set(request.path_range):
            lower, upper = request.path_range.lower or None, request.path_range.upper or None
        with self.store.reading(_commit_ref(request.commit)) as view:
            encode = _file_encoder(view.commit)
            for entry in view.glob(request.pattern):
                if lower is not None and entry.path < lower:
                    continue
                if upper is not None and entry.path >= upper:
                    break
                yield encode(entry)

    @_stream
    def DiffFile(self, request: pfs.DiffFileRequest, context) -> Iterator[bytes]:
        new_ref = _commit_ref(request.new_file.commit)
        old_set = _is_set(request.old_file) and _is_set(request.old_file.commit)
        old_ref = _commit_ref(request.old_file.commit) if old_set else None
        old_path = request.old_file.path if old_set else None
        with self.store.reading_diff(new_ref, request.new_file.path, old_ref, old_path) as diff:
            encode_new = _file_encoder(diff.new.commit)
            encode_old = _file_encoder(diff.old.commit) if diff.old is not None else None
            for old, new in diff.changes():
                yield wire.diff_file_response(encode_new(new) if new is not None else None,
                                              encode_old(old) if old is not None else None)

    @_unary
    def DeleteAll(self, request, context) -> Empty:
        self.store.delete_all()
        return Empty()

    # -- transactions (see transactions.py) ------------------------------------------------
    @_unary
    def StartTransaction(self, request, context) -> txn_api.Transaction:
        return self.transactions.start()

    @_unary
    def InspectTransaction(self, request: txn_api.InspectTransactionRequest, context) -> txn_api.TransactionInfo:
        return self.transactions.inspect(_transaction_id(request.transaction))

    @_unary
    def DeleteTransaction(self, request: txn_api.DeleteTransactionRequest, context) -> Empty:
        self.transactions.delete(_transaction_id(request.transaction))
        return Empty()

    @_unary
    def ListTransaction(self, request, context) -> txn_api.TransactionInfos:
        return txn_api.TransactionInfos(transaction_info=self.transactions.list())

    @_unary
    def FinishTransaction(self, request: txn_api.FinishTransactionRequest, context) -> txn_api.TransactionInfo:
        return self.transactions.finish(_transaction_id(request.transaction))

    @_unary
    def BatchTransaction(self, request: txn_api.BatchTransactionRequest, context) -> txn_api.TransactionInfo:
        return self.transactions.batch(request.requests)

    @_unary
    def DeleteAllTransactions(self, request, context) -> Empty:
        self.transactions.delete_all()
        return Empty()

    # -- version and auth ----------------------------------------------------------------
    def GetVersion(self, request, context) -> Version:
        return VERSION

    def WhoAmI(self, request, context) -> auth_api.WhoAmIResponse:
        if not self.auth_enabled:
            # pachd's answer when auth is off; the sdk turns it into AuthServiceNotActivated
            context.abort(grpc.StatusCode.UNIMPLEMENTED, 'the auth service is not activated')
        return auth_api.WhoAmIResponse(username='localpfs:token')


# ----------------------------------------------------------------------------- registration
def _serialize(message) -> bytes:
    return message if isinstance(message, bytes) else bytes(message)


_PFS_METHODS = {
    # name: (kind, request class or deserializer)
    'CreateProject': ('uu', pfs.CreateProjectRequest),
    'InspectProject': ('uu', pfs.InspectProjectRequest),
    'InspectProjectV2': ('uu', pfs.InspectProjectV2Request),
    'ListProject': ('us', pfs.ListProjectRequest),
    'DeleteProject': ('uu', pfs.DeleteProjectRequest),
    'CreateRepo': ('uu', pfs.CreateRepoRequest),
    'InspectRepo': ('uu', pfs.InspectRepoRequest),
    'ListRepo': ('us', pfs.ListRepoRequest),
    'DeleteRepo': ('uu', pfs.DeleteRepoRequest),
    'DeleteRepos': ('uu', pfs.DeleteReposRequest),
    'StartCommit': ('uu', pfs.StartCommitRequest),
    'FinishCommit': ('uu', pfs.FinishCommitRequest),
    'InspectCommit': ('uu', pfs.InspectCommitRequest),
    'ListCommit': ('us', pfs.ListCommitRequest),
    'SubscribeCommit': ('us', pfs.SubscribeCommitRequest),
    'InspectCommitSet': ('us', pfs.InspectCommitSetRequest),
    'ListCommitSet': ('us', pfs.ListCommitSetRequest),
    'WalkCommitProvenance': ('us', pfs.WalkCommitProvenanceRequest),
    'WalkCommitSubvenance': ('us', pfs.WalkCommitSubvenanceRequest),
    'FindCommits': ('us', pfs.FindCommitsRequest),
    'Fsck': ('us', pfs.FsckRequest),
    'DropCommitSet': ('uu', pfs.DropCommitSetRequest),
    'DropCommit': ('uu', pfs.DropCommitRequest),
    'ClearCommit': ('uu', pfs.ClearCommitRequest),
    'SquashCommitSet': ('uu', pfs.SquashCommitSetRequest),
    'SquashCommit': ('uu', pfs.SquashCommitRequest),
    'CreateBranch': ('uu', pfs.CreateBranchRequest),
    'InspectBranch': ('uu', pfs.InspectBranchRequest),
    'ListBranch': ('us', pfs.ListBranchRequest),
    'DeleteBranch': ('uu', pfs.DeleteBranchRequest),
    'ModifyFile': ('su', wire.decode_modify_file),
    'GetFile': ('us', pfs.GetFileRequest),
    'GetFileTAR': ('us', pfs.GetFileRequest),
    'InspectFile': ('uu', pfs.InspectFileRequest),
    'ListFile': ('us', pfs.ListFileRequest),
    'WalkFile': ('us', pfs.WalkFileRequest),
    'GlobFile': ('us', pfs.GlobFileRequest),
    'DiffFile': ('us', pfs.DiffFileRequest),
    'DeleteAll': ('uu', Empty),
}

_TRANSACTION_METHODS = {
    # name: (this service's method, request class)
    'StartTransaction': ('StartTransaction', txn_api.StartTransactionRequest),
    'InspectTransaction': ('InspectTransaction', txn_api.InspectTransactionRequest),
    'DeleteTransaction': ('DeleteTransaction', txn_api.DeleteTransactionRequest),
    'ListTransaction': ('ListTransaction', txn_api.ListTransactionRequest),
    'FinishTransaction': ('FinishTransaction', txn_api.FinishTransactionRequest),
    'BatchTransaction': ('BatchTransaction', txn_api.BatchTransactionRequest),
    'DeleteAll': ('DeleteAllTransactions', txn_api.DeleteAllRequest),
}

_HANDLER_FACTORIES = {
    'uu': grpc.unary_unary_rpc_method_handler,
    'us': grpc.unary_stream_rpc_method_handler,
    'su': grpc.stream_unary_rpc_method_handler,
}


def _handler(kind: str, behaviour: Callable, request_type) -> grpc.RpcMethodHandler:
    deserializer = request_type if not isinstance(request_type, type) else request_type.FromString
    return _HANDLER_FACTORIES[kind](behaviour, request_deserializer=deserializer, response_serializer=_serialize)


def _on_pool(behaviour: Callable, pool) -> Callable:
    """``behaviour`` run on threads of ``pool`` rather than the server's (grpcio's
    ``experimental_thread_pool``, read by its server for each call)."""
    @functools.wraps(behaviour)
    def run(request, context):
        return behaviour(request, context)

    run.experimental_thread_pool = pool
    return run


def generic_handlers(service: PfsService, subscription_pool=None) -> list[grpc.GenericRpcHandler]:
    """``subscription_pool``: a ThreadPoolExecutor of its own for SubscribeCommit, whose calls hold
    a thread for as long as they are open; the other calls keep the server's threads."""
    pfs_handlers = {name: _handler(kind, getattr(service, name), request_type)
                    for name, (kind, request_type) in _PFS_METHODS.items()}
    if subscription_pool is not None:
        pfs_handlers['SubscribeCommit'] = _handler('us', _on_pool(service.SubscribeCommit, subscription_pool),
                                                   pfs.SubscribeCommitRequest)
    return [
        grpc.method_handlers_generic_handler('pfs_v2.API', pfs_handlers),
        grpc.method_handlers_generic_handler('transaction_v2.API', {
            name: _handler('uu', getattr(service, method), request_type)
            for name, (method, request_type) in _TRANSACTION_METHODS.items()}),
        grpc.method_handlers_generic_handler('versionpb_v2.API', {
            'GetVersion': _handler('uu', service.GetVersion, Empty)}),
        grpc.method_handlers_generic_handler('auth_v2.API', {
            'WhoAmI': _handler('uu', service.WhoAmI, auth_api.WhoAmIRequest)}),
        UnimplementedHandler(),
    ]


class UnimplementedHandler(grpc.GenericRpcHandler):
    """Answers every other method with UNIMPLEMENTED and a message saying which one.

    The handler streams in both directions so it fits a call of any shape; it aborts
    without reading the request.
    """

    def service(self, handler_call_details):
        method = handler_call_details.method

        def refuse(request_iterator, context):
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          f'{method} is not implemented by localpfs, the local stand-in for pachd '
                          f'(it serves pfs_v2.API for development and tests)')
            yield  # pragma: no cover - makes this a generator; abort() raises first

        return grpc.stream_stream_rpc_method_handler(refuse, request_deserializer=None,
                                                     response_serializer=_serialize)
