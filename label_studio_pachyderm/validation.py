"""Connection checks behind "Check connection", create, and sync.

Each failure is a DRF ValidationError (HTTP 400) naming the field to fix.
"""
from __future__ import annotations

import re
from contextlib import contextmanager

from rest_framework.exceptions import ValidationError

from . import pachd
from .errors import validation_error

@contextmanager
def _checking(field: str):
    """Run one step of the check; a pachd 'invalid argument' is about this step's field."""
    try:
        yield
    except pachd.PachdInvalidArgument as exc:
        raise ValidationError({field: [str(exc)]}) from None
    except pachd.PachdError as exc:
        raise validation_error(exc) from None


def _check_regex(storage) -> None:
    if storage.regex_filter:
        try:
            re.compile(storage.regex_filter)
        except re.error as exc:
            raise ValidationError({'regex_filter': [f'Invalid regular expression {storage.regex_filter!r}: {exc}']})


def _check_repo(storage):
    if not storage.repo:
        raise ValidationError({'repo': ['A Pachyderm repo is required']})
    with _checking('pachd_address'):
        client = storage.get_client()
    with _checking('auth_token' if storage.auth_token else 'pachd_address'):
        client.check()
    with _checking('repo'):
        client.inspect_repo(storage.project_name, storage.repo)
    return client


def _check_watch(storage) -> None:
    if getattr(storage, 'watch_commits', False) and (storage.commit or '').strip():
        raise ValidationError({'watch_commits': [
            f'Syncing automatically on new commits needs the branch head: this storage is pinned to commit '
            f'{storage.commit.strip()}, which never changes. Clear the commit to follow '
            f"'{storage.branch_name}', or turn watching off."]})


def _check_predictions(storage, client) -> None:
    """The predictions repo and branch exist on the storage's pachd; the path template is sound."""
    from .imports.predictions import DEFAULT_TEMPLATE, template_problem

    repo = (storage.predictions_repo or '').strip()
    if not repo:
        return
    problem = template_problem(storage.predictions_path or DEFAULT_TEMPLATE)  # empty: the default
    if problem:
        raise ValidationError({'predictions_path': [problem]})
    with _checking('predictions_repo'):
        try:
            client.inspect_repo(storage.project_name, repo)
        except pachd.PachdNotFound:
            raise ValidationError({'predictions_repo': [
                f"repo '{repo}' not found in project '{storage.project_name}'"]}) from None
    branch = storage.predictions_branch or 'master'
    with _checking('predictions_branch'):
        try:
            client.branch_head(storage.project_name, repo, branch)
        except pachd.PachdNotFound:
            raise ValidationError({'predictions_branch': [
                f"branch '{branch}' not found in {storage.project_name}/{repo}"]}) from None


def validate_import_storage(storage, require_files: bool = True) -> str:
    """Check pachd, token, repo, branch (or commit) and, optionally, that files match.

    Returns the commit a sync would read, found as the sync finds it (``importer.readable_commit``:
    the newest commit finished without error), so "Check connection" and the files preview look
    at the files a sync imports. '' when the branch has no such commit yet, which only a check
    that needs files refuses.
    """
    from .imports.sync import readable_commit, skipped_note

    _check_watch(storage)
    _check_regex(storage)
    client = _check_repo(storage)
    _check_predictions(storage, client)
    with _checking('commit' if storage.commit else 'branch'):
        resolved = readable_commit(storage, client)
    if require_files:
        if not resolved.id:
            raise ValidationError({'branch': [
                f'{storage.project_name}/{storage.repo}@{storage.branch_name} has no commit finished without '
                f'error yet ({skipped_note(resolved)}); sync once a commit is finished']})
        _check_files(storage, client, resolved.id)
    return resolved.id


def _check_files(storage, client, commit: str) -> None:
    """At least one selected file; a missing prefix lists no files.

    The whole listing is scanned when it has to be: stopping early would call a storage whose
    filter matches nothing "connected" (as this check once did after 10,000 files), or refuse one
    whose first match comes late. Listing is streamed, one directory at a time (the first file
    arrives without a walk of the whole repo); the first match ends it.
    """
    listed = 0
    with _checking('prefix'):
        for entry in client.list_files_by_directory(
            storage.project_name, storage.repo, commit, storage.clean_prefix, recursive=storage.recursive_scan
        ):
            if storage.path_matches(entry.path):
                return
            listed += 1
    where = f'/{storage.clean_prefix}' if storage.clean_prefix else 'the repo root'
    what = f' matching {storage.regex_filter!r}' if storage.regex_filter else ''
    scope = '' if storage.recursive_scan else ' (sub-folders not scanned)'
    seen = f'{listed} file{"" if listed == 1 else "s"} listed, none selected' if listed else 'no files there'
    raise ValidationError({'prefix': [
        f'No files{what} under {where}{scope} in {storage.project_name}/{storage.repo}@{commit} ({seen})']})


def export_prefix_problem(prefix: str):
    """Why pachd would refuse every file written under ``prefix``, or None.

    pachd's rule for the paths of files it writes (ValidatePath / ValidateFilename in pachd 2.x):
    printable ASCII only, none of the glob characters, no "." or ".." elements.
    """
    for char in prefix or '':
        if not ' ' <= char <= '~':
            return (f'{char!r} is not allowed: pachd accepts only printable ASCII characters (letters, digits, '
                    'space and punctuation) in file paths')
        if char in pachd.GLOB_CHARACTERS:
            return (f'{char!r} is not allowed: pachd refuses the glob characters '
                    f'{" ".join(pachd.GLOB_CHARACTERS)} in file paths')
    if any(part in ('.', '..') for part in (prefix or '').split('/')):
        return 'the folder names "." and ".." are not allowed in pachd file paths'
    return None


def _check_export_prefix(storage) -> None:
    problem = export_prefix_problem(storage.prefix)
    if problem:
        raise ValidationError({'prefix': [f'Invalid folder {storage.prefix!r}: {problem}; every export would fail']})


def validate_export_formats(storage) -> None:
    """``export_formats``: a list of distinct format names LS's Export dialog offers for the project."""
    from .exports.formats import problem

    message = problem(storage.export_formats, getattr(storage, 'project', None))
    if message:
        raise ValidationError({'export_formats': [message]})


BRANCH_NAME = re.compile(r'^[a-zA-Z0-9_-]+$')  # pachd's rule for branch names


def validate_promote_to(storage) -> None:
    """``promote_to``: empty, or a branch name other than the working branch."""
    name = storage.promote_to or ''
    if not name:
        return
    if not BRANCH_NAME.match(name):
        raise ValidationError({'promote_to': [
            f'{name!r} is not a branch name: letters, digits, "_" and "-" only']})
    if name == storage.branch_name:
        raise ValidationError({'promote_to': [
            f'"Promote to" must be another branch than the one the round exports to ({storage.branch_name!r}): '
            'pipelines read it, annotators write the other']})


def validate_export_storage(storage) -> None:
    """Check the folder, pachd, token and repo. A missing branch is fine: the first write creates it."""
    _check_export_prefix(storage)
    validate_promote_to(storage)
    _check_repo(storage)
