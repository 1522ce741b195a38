"""The one mapping from pachd errors to what Label Studio shows a person."""
from __future__ import annotations

from rest_framework.exceptions import ValidationError

from . import pachd

# Which storage field a missing object points at.
_NOT_FOUND_FIELD = {
    'project': 'pach_project',
    'repo': 'repo',
    'branch': 'branch',
    'commit': 'commit',
    'file': 'prefix',
}


def field_for(exc: pachd.PachdError) -> str:
    if isinstance(exc, pachd.PachdNotFound):
        return _NOT_FOUND_FIELD.get(exc.kind, 'non_field_errors')
    if isinstance(exc, pachd.PachdAuthError):
        return 'auth_token'
    if isinstance(exc, (pachd.PachdUnavailable, pachd.PachdInvalidArgument)):
        return 'pachd_address'
    return 'non_field_errors'


def validation_error(exc: pachd.PachdError, per_field: bool = True) -> ValidationError:
    """A DRF ValidationError (HTTP 400) carrying the pachd error's message.

    Per field, the storage form shows it next to the input to fix. Label Studio's
    failed-sync status shows the message itself rather than a traceback.
    """
    message = str(exc)
    if per_field:
        return ValidationError({field_for(exc): [message]})
    return ValidationError([message])
