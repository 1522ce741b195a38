"""Token check for every call, as pachd does once auth is activated.

Clients send the token in the ``authn-token`` metadata entry. GetVersion stays open, as it
is on pachd, so a client can tell it reached the server before it has a token. The token is
compared in constant time and never logged.
"""
from __future__ import annotations

import hmac

import grpc

TOKEN_METADATA_KEY = 'authn-token'
_OPEN_METHODS = frozenset({'/versionpb_v2.API/GetVersion'})

MISSING_TOKEN = 'no authentication token (try logging in)'
BAD_TOKEN = 'provided auth token is corrupted or has expired (try logging in again)'


class TokenInterceptor(grpc.ServerInterceptor):
    def __init__(self, token: str):
        self._token = token.encode('utf-8')

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method in _OPEN_METHODS:
            return continuation(handler_call_details)
        sent = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == TOKEN_METADATA_KEY:
                sent = value
                break
        if sent is None:
            return _refusal(continuation(handler_call_details), MISSING_TOKEN)
        if not hmac.compare_digest(sent.encode('utf-8') if isinstance(sent, str) else sent, self._token):
            return _refusal(continuation(handler_call_details), BAD_TOKEN)
        return continuation(handler_call_details)


def _refusal(handler, message: str):
    """A handler of the same shape as ``handler`` that answers UNAUTHENTICATED."""
    if handler is None:  # unknown method: let the server report it as such
        return None

    def deny(request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    def deny_stream(request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - abort() raises first

    deserializer = handler.request_deserializer
    serializer = handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny_stream, deserializer, serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny, deserializer, serializer)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny_stream, deserializer, serializer)
    return grpc.unary_unary_rpc_method_handler(deny, deserializer, serializer)
