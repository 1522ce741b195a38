"""The pachd client layer: the only code that imports ``pachyderm_sdk`` (in ``_sdk``).

Everything else in the plugin talks to Pachyderm through :class:`PachdClient`
and sees plain Python types (str, int, bytes, dataclasses) and the exceptions
defined here. Messages of those exceptions never contain the auth token.

Paths: every path this layer returns is relative to the repo root and has no
leading slash (``cats/1.jpg``). Paths passed in may have a leading slash or not.

Commit references: wherever a ``commit`` is asked for, a commit id is expected;
like pachctl, a string that is not a commit id (32 hex digits) is taken as a
branch name and means that branch's head at the time of the call.

Modules: ``values`` (addresses, result types), ``errors`` (exceptions and the
one error mapping), ``client`` (PachdClient), ``shared`` (the process-wide client cache),
``streams`` (deadlines and cancellation of server streams, FileStream),
``subscriptions`` (every SubscribeCommit of the process on one asyncio thread), ``channels``
(how a channel is dialled: keepalive, reconnect, TLS, for both kinds of channel),
``config`` (the pachctl config file), ``_sdk`` (the sdk import site).
"""
from .client import FINISH_WAIT, WRITE_CHUNK, PachdClient
from .config import config_context, config_path
from .errors import (PachdAlreadyExists, PachdAuthError, PachdError, PachdInvalidArgument, PachdNotFound,
                     PachdUnavailable)
from .shared import clear_client_cache, get_client
from .streams import FileStream
from .subscriptions import BranchListener, Following, Subscriptions
from .values import (DEFAULT_PORT, DEFAULT_TIMEOUT, GLOB_CHARACTERS, CommitInfo, DiffEntry, FileEntry, FileOp,
                     PachConfigContext, PachdAddress, RepoInfo, address_identity, is_commit_id, parse_address)

__all__ = (
    'DEFAULT_PORT', 'DEFAULT_TIMEOUT', 'FINISH_WAIT', 'GLOB_CHARACTERS', 'WRITE_CHUNK',
    'PachdError', 'PachdUnavailable', 'PachdAuthError', 'PachdNotFound', 'PachdInvalidArgument',
    'PachdAlreadyExists',
    'PachdAddress', 'FileEntry', 'DiffEntry', 'CommitInfo', 'RepoInfo', 'FileOp', 'PachConfigContext',
    'parse_address', 'address_identity', 'is_commit_id', 'config_context', 'config_path',
    'PachdClient', 'FileStream', 'get_client', 'clear_client_cache',
    'Subscriptions', 'Following', 'BranchListener',
)
