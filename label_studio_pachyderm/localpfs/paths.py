"""File paths inside a commit, and pachd's glob patterns.

Stored paths are absolute and clean: ``/a/b.jpg``. Directories are never stored; they exist
while a file below them does and are reported with a trailing slash (``/a/``), which is
also how they sort among their siblings (byte order, as pachd's file-set index does).
"""
from __future__ import annotations

import re

from .errors import InvalidArgument

# Characters pachd refuses in written paths because they are glob syntax.
_GLOB_CHARS_RE = re.compile(r'[*?\[\]{}!()@+^]')
_PRINTABLE_ASCII_RE = re.compile(r'^[ -~]+$')


def clean(path: str) -> str:
    """Canonical form of a path given by a client: '' -> '/', 'a//b/' -> '/a/b'.

    '.' elements are dropped; '..' is refused rather than resolved, so no request can name
    something outside the directory it appears to name.
    """
    parts = []
    for part in (path or '').split('/'):
        if part in ('', '.'):
            continue
        if part == '..':
            raise InvalidArgument(f'path ({path}) invalid: relative file paths are not allowed')
        parts.append(part)
    return '/' + '/'.join(parts)


def validate_for_write(path: str) -> str:
    """Clean ``path`` and apply pachd's rules for names of new files."""
    if not _PRINTABLE_ASCII_RE.match(path or ''):
        raise InvalidArgument(f'path ({path}) invalid: only printable ASCII characters allowed')
    found = _GLOB_CHARS_RE.search(path)
    if found:
        raise InvalidArgument(f'path ({path}) invalid: globbing character ({found.group(0)}) not allowed in path')
    if any(part in ('.', '..') for part in path.split('/')):
        raise InvalidArgument(f'path ({path}) invalid: relative file paths are not allowed')
    cleaned = clean(path)
    if cleaned == '/':
        raise InvalidArgument(f'path ({path}) invalid: a file needs a name')
    return cleaned


def subtree_range(directory: str) -> tuple[str, str]:
    """[low, high) bounds of the stored paths strictly below ``directory`` (a clean path).

    '0' is the byte after '/', so every path starting with 'dir/' sorts before 'dir0'.
    """
    prefix = directory if directory.endswith('/') else directory + '/'
    return prefix, prefix[:-1] + '0'


def dir_key(directory: str) -> str:
    """How a directory is named in listings: its clean path with a trailing slash."""
    return directory if directory.endswith('/') else directory + '/'


def parent_dir(path: str) -> str:
    """'/a/b/c.txt' -> '/a/b/'."""
    return path[:path.rfind('/') + 1]


def has_glob(pattern: str) -> bool:
    return bool(_GLOB_CHARS_RE.search(pattern))


def glob_literal_prefix(pattern: str) -> str:
    found = _GLOB_CHARS_RE.search(pattern)
    return pattern if not found else pattern[:found.start()]


def compile_glob(pattern: str):
    """Return match(path) for a pachd glob: ``*`` and ``?`` stay within one path element,
    ``**`` crosses elements, ``[...]``/``[!...]`` are classes, ``{a,b}`` alternatives.

    Like pachd, directories are matched without their trailing slash.
    """
    cleaned = clean(pattern)
    try:
        regex = re.compile(_glob_to_regex(cleaned) + r'\Z', re.DOTALL)
    except re.error as err:
        raise InvalidArgument(f'invalid glob pattern {pattern!r}: {err}') from None

    def match(path: str) -> bool:
        if path == '/':
            return cleaned == '/'  # the root only matches the pattern '/' (as in pachd)
        return regex.match(path.rstrip('/')) is not None
    return match


def _glob_to_regex(pattern: str) -> str:
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == '*':
            if pattern.startswith('**', i):
                out.append('.*')
                i += 2
                continue
            out.append('[^/]*')
        elif ch == '?':
            out.append('[^/]')
        elif ch == '\\' and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == '[':
            end = pattern.find(']', i + 2)
            if end == -1:
                raise InvalidArgument(f'invalid glob pattern {pattern!r}: unclosed [')
            body = pattern[i + 1:end]
            negate = body[:1] in ('!', '^')
            if negate:
                body = body[1:]
            body = body.replace('\\', '\\\\')
            out.append(f'[^/{body}]' if negate else f'[{body}]')
            i = end
        elif ch == '{':
            end, depth = i, 0
            while end < n:
                depth += {'{': 1, '}': -1}.get(pattern[end], 0)
                if depth == 0:
                    break
                end += 1
            if end >= n:
                raise InvalidArgument(f'invalid glob pattern {pattern!r}: unclosed {{')
            alternatives = _split_top_level(pattern[i + 1:end])
            out.append('(?:' + '|'.join(_glob_to_regex(alt) for alt in alternatives) + ')')
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return ''.join(out)


def _split_top_level(body: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        if ch == '{':
            depth += 1
        elif ch == '}':
            depth -= 1
        elif ch == ',' and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    return parts
