"""Names of projects, repos and branches, commit ids, and pachd's ancestry syntax.

The rules are pachd's: names may hold letters, digits, ``_`` and ``-`` only (so that the
ancestry characters ``^ ~ .`` can never be part of one), commit ids are UUIDs written
without dashes, and ``master^2`` / ``master~2`` / ``master.1`` pick ancestors of a branch
head or the n-th commit from the start of the branch.
"""
from __future__ import annotations

import re
import uuid

from .errors import InvalidArgument

DEFAULT_PROJECT = 'default'
USER_REPO_TYPE = 'user'

_NAME_RE = re.compile(r'^[a-zA-Z0-9_-]+$')
# uuid4().hex: the version nibble (index 12) is always 4; pachd and the sdk test this shape.
_COMMIT_ID_RE = re.compile(r'^[0-9a-f]{12}4[0-9a-f]{19}$')
# pachd keeps project names short enough to build Kubernetes names from them.
_PROJECT_NAME_LIMIT = 63 - 8 - len('-v99')


def validate_name(name: str) -> None:
    if not _NAME_RE.match(name or ''):
        raise InvalidArgument(
            f'name ({name}) invalid: only alphanumeric characters, underscores, and dashes are allowed')


def validate_project_name(name: str) -> None:
    if name == DEFAULT_PROJECT:
        return
    if len(name) > _PROJECT_NAME_LIMIT:
        raise InvalidArgument(
            f'invalid project name: project name "{name}" is {len(name) - _PROJECT_NAME_LIMIT} '
            f'characters longer than the {_PROJECT_NAME_LIMIT} max')
    try:
        validate_name(name)
    except InvalidArgument as err:
        raise InvalidArgument(f'invalid project name: {err.message}') from None
    if not name[0].isalnum():
        raise InvalidArgument('invalid project name: project names must start with an alphanumeric character')


def new_commit_id() -> str:
    return uuid.uuid4().hex


def is_commit_id(text: str) -> bool:
    return bool(_COMMIT_ID_RE.match(text))


def parse_ancestry(ref: str) -> tuple[str, int]:
    """Split ``master^2`` into ('master', 2); ``master.1`` gives ('master', -1).

    A positive offset counts parents back from the named commit; a negative one counts
    commits forward from the first commit of the branch (pachd's ``.n`` syntax).
    """
    cut = next((i for i, ch in enumerate(ref) if ch in '^~.'), -1)
    if cut == -1:
        return ref, 0
    base, sep, rest = ref[:cut], ref[cut], ref[cut + 1:]
    if rest.isdigit():
        count = int(rest)
    elif rest.strip(sep) == '':
        count = len(rest) + 1  # 'master^^' is two steps back
    else:
        raise InvalidArgument(f'invalid ancestry syntax "{ref}", cannot mix {sep} and {rest.strip(sep)[0]} characters')
    return base, (-count if sep == '.' else count)
