"""Exceptions of the pachd layer, and the one function that maps sdk/gRPC failures onto them."""
from __future__ import annotations

import re
from typing import Callable, Optional
from urllib.parse import unquote

import grpc

from ._sdk import AuthServiceNotActivated


class PachdError(Exception):
    """Base class. ``str(err)`` is a message a person can act on, token-free.

    ``code`` is the gRPC status code name when pachd answered with one ('' otherwise).
    """

    code = ''


class PachdUnavailable(PachdError):
    """pachd cannot be reached (refused, DNS, TLS handshake, deadline exceeded)."""


class PachdAuthError(PachdError):
    """Token missing, wrong or expired (UNAUTHENTICATED), or PERMISSION_DENIED."""


class PachdNotFound(PachdError):
    """A project, repo, branch, commit or file does not exist.

    ``kind`` is one of 'project', 'repo', 'branch', 'commit', 'file'; ``name``
    names the missing object (e.g. 'default/images@master').
    """

    def __init__(self, message: str, kind: str = '', name: str = ''):
        super().__init__(message)
        self.kind = kind
        self.name = name


class PachdInvalidArgument(PachdError):
    """Bad address, bad name, bad path, or pachd said INVALID_ARGUMENT."""


class PachdAlreadyExists(PachdError):
    """The object to create exists already."""


# What gRPC says when the peer is not a gRPC server at all.
_HTTP_STATUS_TEXT = re.compile(r'Received http2 header with status: (\d+)', re.I)
_NOT_HTTP2_TEXT = re.compile(
    r'Failed parsing HTTP/2|Expected SETTINGS frame|Trying to connect an http1\.x server|unknown service pfs_v2\.API',
    re.I)
_CHECK_ADDRESS = ("check the address and port (pachd's gRPC port, 30650 by default), and use grpcs:// if pachd "
                  'expects TLS')

_NOT_FOUND_TEXT = re.compile(r'\b(project|repo|branch|commit|file)\s+"?([^\s"]+?)"?\s+(?:was\s+)?not found', re.I)


def _scrub(text: str, token: Optional[str]) -> str:
    if token and token in text:
        text = text.replace(token, '***')
    return text


def _scrubbed(err: PachdError, token: Optional[str]) -> PachdError:
    """``err`` with the token masked wherever it might have slipped in (message, name)."""
    if token:
        err.args = tuple(_scrub(a, token) if isinstance(a, str) else a for a in err.args)
        if isinstance(err, PachdNotFound):
            err.name = _scrub(err.name, token)
    return err


def map_error(exc: BaseException, where: str, token: Optional[str],
               explain: Optional[Callable[[], Optional[PachdNotFound]]] = None) -> PachdError:
    """The one translation of sdk/gRPC failures into this module's exceptions.

    ``explain`` is asked, for NOT_FOUND answers, which object is missing (the
    client checks project, repo, branch, commit in that order); without it, or
    when it cannot tell, pachd's own message decides. ``where`` is the URL of the pachd
    that failed, as messages name it.
    """
    if isinstance(exc, PachdError):
        return _scrubbed(exc, token)
    if isinstance(exc, AuthServiceNotActivated):
        err = PachdError(f'pachd at {where} has no auth service activated: {exc}')
    elif isinstance(exc, grpc.RpcError) and callable(getattr(exc, 'code', None)):
        code = exc.code() or grpc.StatusCode.UNKNOWN
        details = (exc.details() or '').strip() or code.name.lower()
        lowered = details.lower()
        # pachd sometimes answers UNKNOWN with a typed message; read it.
        if code == grpc.StatusCode.UNKNOWN and 'not found' in lowered:
            code = grpc.StatusCode.NOT_FOUND
        elif code == grpc.StatusCode.UNKNOWN and 'already exists' in lowered:
            code = grpc.StatusCode.ALREADY_EXISTS
        http_status = _HTTP_STATUS_TEXT.search(details)
        if http_status:
            # An HTTP/2 server that is not gRPC (a web server, an ingress without a gRPC route):
            # gRPC turns its 404 into UNIMPLEMENTED, 401 into UNAUTHENTICATED, ...; none is pachd's.
            err = PachdUnavailable(
                f'{where} does not answer as pachd: an HTTP server answered with status {http_status.group(1)} '
                f'instead of pachd; {_CHECK_ADDRESS}')
        elif _NOT_HTTP2_TEXT.search(details):
            err = PachdUnavailable(
                f'{where} does not answer as pachd: something listens there but does not speak pachd\'s gRPC '
                f'({details}); {_CHECK_ADDRESS}')
        elif code == grpc.StatusCode.UNAVAILABLE:
            # gRPC's transport writes addresses URI-escaped (ipv6:%5B::1%5D:30650); a person reads [::1].
            err = PachdUnavailable(f'cannot reach pachd at {where}: {unquote(details)}')
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            err = PachdUnavailable(f'cannot reach pachd at {where}: no answer in time ({details})')
        elif code == grpc.StatusCode.UNAUTHENTICATED:
            err = PachdAuthError(f'pachd rejected the auth token (missing, wrong or expired): {details}')
        elif code == grpc.StatusCode.PERMISSION_DENIED:
            err = PachdAuthError(f'pachd rejected the auth token (not allowed to do this): {details}')
        elif code == grpc.StatusCode.NOT_FOUND:
            err = (explain() if explain else None) or _not_found_from_text(details)
        elif code == grpc.StatusCode.ALREADY_EXISTS:
            err = PachdAlreadyExists(details)
        elif code == grpc.StatusCode.INVALID_ARGUMENT:
            err = PachdInvalidArgument(f'pachd refused the request: {details}')
        elif code == grpc.StatusCode.UNIMPLEMENTED:
            err = PachdError(f'pachd at {where} does not support this call ({code.name}): {details}')
        else:
            err = PachdError(f'pachd error {code.name}: {details}')
        err.code = code.name
    elif isinstance(exc, ConnectionError):
        err = PachdUnavailable(f'cannot reach pachd at {where}: {exc}'.strip())
    else:
        err = PachdError(f'pachd client error: {exc.__class__.__name__}: {exc}')
    return _scrubbed(err, token)


def _not_found_from_text(details: str) -> PachdNotFound:
    match = _NOT_FOUND_TEXT.search(details)
    kind, name = (match.group(1).lower(), match.group(2)) if match else ('', '')
    return PachdNotFound(details if 'not found' in details.lower() else f'not found: {details}',
                         kind=kind, name=name)


def connect_failed(call) -> bool:
    """Whether a failed call never reached pachd (no connection), so repeating it is safe."""
    return call.code() == grpc.StatusCode.UNAVAILABLE and 'failed to connect' in (call.details() or '')
