"""pachd 2.12's pickers (``pfs.CommitPicker``, ``BranchPicker``, ``RepoPicker``): the way its newer
calls (WalkCommitProvenance/Subvenance, the metadata API) name a commit, turned into the
``CommitRef`` the store resolves.

A commit by global id is ``<repo>@<id>``, a branch head ``<repo>@<branch>``, an ancestor
``<start>^<offset>`` and a branch root ``<branch>.<offset>`` (pachd's ancestry syntax, which the
store already reads)."""
from __future__ import annotations

import betterproto
from pachyderm_sdk.api import pfs

from . import errors, names
from .store import CommitRef

def repo(picker: pfs.RepoPicker) -> tuple[str, str]:
    """(project, repo) of a RepoPicker."""
    name = picker.name if picker is not None else None
    if name is None or not name.name:
        raise errors.InvalidArgument('repo picker: a repo name is required')
    if name.type and name.type != 'user':
        raise errors.Unimplemented(f'repos of type {name.type!r} are not implemented here')
    return (name.project.name if name.project and name.project.name else names.DEFAULT_PROJECT), name.name


def _branch(picker: pfs.BranchPicker) -> tuple[str, str, str]:
    name = picker.name if picker is not None else None
    if name is None or not name.name:
        raise errors.InvalidArgument('branch picker: a branch name is required')
    project, repo_name = repo(name.repo)
    return project, repo_name, name.name


def commit(picker: pfs.CommitPicker) -> CommitRef:
    """The CommitRef a CommitPicker names."""
    if picker is None:
        raise errors.InvalidArgument('commit picker: nothing picked')
    field, value = betterproto.which_one_of(picker, 'picker')
    if field == 'id':
        if not value.id:
            raise errors.InvalidArgument('commit picker: a commit id is required')
        project, repo_name = repo(value.repo)
        return CommitRef(project, repo_name, value.id, '')
    if field == 'branch_head':
        project, repo_name, branch = _branch(value)
        return CommitRef(project, repo_name, '', branch)
    if field == 'ancestor':
        start = commit(value.start)
        return CommitRef(start.project, start.repo, f'{start.id or start.branch}^{value.offset}', '')
    if field == 'branch_root':
        project, repo_name, branch = _branch(value.branch)
        return CommitRef(project, repo_name, f'{branch}.{value.offset + 1}', '')
    raise errors.InvalidArgument('commit picker: nothing picked')
