"""Run the local PFS server in the foreground: ``python -m label_studio_pachyderm.localpfs``.

Exits with status 2 when the server cannot start (port in use, data directory not
writable), after printing why. The auth token can come from ``LOCALPFS_AUTH_TOKEN`` so it
does not show up in process listings.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, LocalPFSError, serve_forever


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m label_studio_pachyderm.localpfs',
                                     description='Serve a local stand-in for pachd (pfs_v2.API over gRPC).')
    parser.add_argument('--host', default=DEFAULT_HOST, help=f'address to listen on (default {DEFAULT_HOST})')
    parser.add_argument('--port', type=int, default=DEFAULT_PORT, help=f'port (default {DEFAULT_PORT}; 0 = any free)')
    parser.add_argument('--data-dir', default=DEFAULT_DATA_DIR, help=f'where data is kept (default {DEFAULT_DATA_DIR})')
    parser.add_argument('--auth-token', default=os.environ.get('LOCALPFS_AUTH_TOKEN'),
                        help='require this token in the authn-token metadata (default: $LOCALPFS_AUTH_TOKEN, or none)')
    args = parser.parse_args(argv)
    try:
        serve_forever(args.host, args.port, args.data_dir, args.auth_token)
    except LocalPFSError as err:
        print(f'localpfs: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
