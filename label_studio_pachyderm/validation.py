"""Connection checks behind "Check connection", create, and sync.

Each failure is a DRF ValidationError (HTTP 400) naming the field to fix.
"""
from __future__ import annotations

import re

from rest_framework.exceptions import ValidationError

from . import pachd
from .errors import validation_error

# How many listed files "Check connection" looks at before it gives up finding a match.
_MAX_FILES_CHECKED = 10_000


def _check_regex(storage) -> None:
    if storage.regex_filter:
        try:
            re.compile(storage.regex_filter)
        except re.error as exc:
            raise ValidationError({'regex_filter': [f'Invalid regular expression {storage.regex_filter!r}: {exc}']})


def _check_repo(storage, client) -> None:
    client.check()
    client.inspect_repo(storage.project_name, storage.repo)


def validate_import_storage(storage, require_files: bool = True) -> str:
    """Check pachd, token, repo, branch (or commit) and, optionally, that files match.

    Returns the commit a sync would read.
    """
    if not storage.repo:
        raise ValidationError({'repo': ['A Pachyderm repo is required']})
    _check_regex(storage)
    try:
        client = storage.get_client()
        _check_repo(storage, client)
        commit = client.resolve_commit(
            storage.project_name, storage.repo, storage.branch_name, storage.commit or None
        )
        if require_files:
            checked = 0
            for entry in client.list_files(
                storage.project_name, storage.repo, commit, storage.clean_prefix, recursive=storage.recursive_scan
            ):
                if storage.path_matches(entry.path):
                    break
                checked += 1
                if checked >= _MAX_FILES_CHECKED:
                    break
            else:
                where = f'/{storage.clean_prefix}' if storage.clean_prefix else 'the repo root'
                what = f' matching {storage.regex_filter!r}' if storage.regex_filter else ''
                raise ValidationError(
                    {'prefix': [f'No files{what} under {where} in {storage.project_name}/{storage.repo}@{commit}']}
                )
        return commit
    except pachd.PachdNotFound as exc:
        if exc.kind == 'file':
            where = f'/{storage.clean_prefix}' if storage.clean_prefix else 'the repo root'
            raise ValidationError({'prefix': [f'Path {where} does not exist in {storage.repo}: {exc}']}) from None
        raise validation_error(exc) from None
    except pachd.PachdError as exc:
        raise validation_error(exc) from None


def validate_export_storage(storage) -> None:
    """Check pachd, token and repo. A missing branch is fine: the first write creates it."""
    if not storage.repo:
        raise ValidationError({'repo': ['A Pachyderm repo is required']})
    try:
        _check_repo(storage, storage.get_client())
    except pachd.PachdError as exc:
        raise validation_error(exc) from None
