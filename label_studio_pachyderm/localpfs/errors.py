"""Errors raised by the local PFS store, each tied to the gRPC status pachd would answer with.

The store knows nothing about gRPC; it raises these and the service layer turns ``code``
(a ``grpc.StatusCode`` member name) into the status of the call. Messages follow pachd's
own wording (``src/server/pfs/pfs.go`` in pachyderm 2.x) so that code matching on them, and
people reading them, see the same text as against a real cluster.
"""
from __future__ import annotations


class PFSError(Exception):
    """Base class: ``code`` names the gRPC status code, ``str(err)`` is the status message."""

    code = 'UNKNOWN'

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Unknown(PFSError):
    """pachd's plain ``errors.Errorf`` failures reach clients with code UNKNOWN."""

    code = 'UNKNOWN'


class NotFound(PFSError):
    code = 'NOT_FOUND'


class AlreadyExists(PFSError):
    code = 'ALREADY_EXISTS'


class InvalidArgument(PFSError):
    code = 'INVALID_ARGUMENT'


class FailedPrecondition(PFSError):
    code = 'FAILED_PRECONDITION'


class Unimplemented(PFSError):
    code = 'UNIMPLEMENTED'


class Cancelled(PFSError):
    code = 'CANCELLED'


class Unavailable(PFSError):
    code = 'UNAVAILABLE'


# --- constructors for pachd's recurring messages -------------------------------------------
# ``repo`` below is always the 'project/name' form pachd prints (pfs.Repo.String()).

def project_not_found(project: str) -> NotFound:
    return NotFound(f'project "{project}" not found')


def repo_not_found(repo: str) -> NotFound:
    return NotFound(f'repo {repo} not found')


def branch_not_found(repo: str, branch: str) -> NotFound:
    return NotFound(f'branch "{branch}" not found in repo {repo}')


def commit_not_found(repo: str, ref: str) -> NotFound:
    return NotFound(f'commit {repo}@{ref} not found')


def file_not_found(repo: str, commit_id: str, path: str) -> NotFound:
    return NotFound(f'file {path} not found in repo {repo} at commit {commit_id}')


def commit_finished(repo: str, commit_id: str) -> FailedPrecondition:
    return FailedPrecondition(f'commit {repo}@{commit_id} has already finished')
