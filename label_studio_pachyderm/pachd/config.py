"""The pachctl config file: where pachd is and which token to use when none is given."""
from __future__ import annotations

import json
import os
from typing import Optional

from ._sdk import ConfigFile
from .errors import PachdInvalidArgument
from .values import PachConfigContext


def config_path() -> str:
    return os.path.expanduser(os.environ.get('PACH_CONFIG') or os.path.join('~', '.pachyderm', 'config.json'))


def config_context(path: Optional[str] = None) -> PachConfigContext:
    """The active context of the pachctl config (``$PACH_CONFIG`` or ``~/.pachyderm/config.json``)."""
    shown = os.path.expanduser(path) if path else config_path()
    try:
        with open(shown, 'rb') as handle:
            data = json.load(handle)
        config = ConfigFile(data)
        name = data['v2']['active_context']
        context = config.active_context
        certs = context.server_cas_decoded
    except FileNotFoundError:
        raise PachdInvalidArgument(f'no Pachyderm config file at {shown}') from None
    except Exception as exc:  # unreadable, not JSON, no v2 section, active context missing, bad base64
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        # A parse error message may quote the file; the file holds a session token.
        if isinstance(exc, (UnicodeDecodeError, json.JSONDecodeError)):
            reason = 'not valid JSON'
        raise PachdInvalidArgument(f'cannot use the Pachyderm config file {shown}: {reason}') from None
    return PachConfigContext(
        name=name, address=context.active_pachd_address, token=context.session_token or None,
        root_certs=certs, project=context.project or None,
    )
