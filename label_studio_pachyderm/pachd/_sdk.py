"""The one place ``pachyderm_sdk`` is imported (see the README on why this sdk).

The rest of the pachd layer takes the sdk's names from here; the rest of the
plugin never sees them.
"""
from __future__ import annotations

import grpc
from pachyderm_sdk import Client as _SdkClient
from pachyderm_sdk.api import metadata
from pachyderm_sdk.api import pfs
from pachyderm_sdk.api import transaction
from pachyderm_sdk.config import ConfigFile
from pachyderm_sdk.constants import GRPC_CHANNEL_OPTIONS
from pachyderm_sdk.errors import AuthServiceNotActivated

__all__ = ('AuthServiceNotActivated', 'ConfigFile', 'GRPC_CHANNEL_OPTIONS', 'SdkClient', 'metadata', 'pfs',
           'transaction')


class SdkClient(_SdkClient):
    """A ``pachyderm_sdk.Client`` over a channel built by :class:`PachdClient`.

    ``Client.__init__`` is deliberately not run: with no token it falls back to
    the process environment (``PACH_PYTHON_AUTH_TOKEN``, and it exchanges
    ``PACH_PYTHON_OIDC_TOKEN`` for a session with a network call that has no
    deadline). Label Studio serves many projects from one process; a storage
    configured without a token must reach pachd as anonymous, never as whoever
    the server's environment is. So the token is only ever the one given, and it
    travels in our interceptor, not in this object.
    """

    def __init__(self, channel: grpc.Channel, address: str):
        self.address = address
        self.root_certs = None
        self._auth_token = None
        self._transaction_id = None
        self._grpc_metadata = []
        self._channel = channel
        self._worker = None
        self._init_api()
