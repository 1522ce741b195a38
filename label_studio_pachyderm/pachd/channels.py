"""How a channel to pachd is dialled: target, options (keepalive, reconnect), credentials.

One place for both kinds of channel the layer opens: the blocking one of ``PachdClient``
and the asyncio one that holds the subscriptions (``subscriptions``), so a frozen pachd
is found the same way by both.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from ._sdk import GRPC_CHANNEL_OPTIONS
from .values import PachdAddress

KEEPALIVE_SECONDS = 10  # a ping after this long without traffic on the connection ...
KEEPALIVE_TIMEOUT_SECONDS = 5  # ... must be answered within this, or the connection is closed


def channel_options(reconnect_grace: float) -> List[Tuple[str, object]]:
    """gRPC options of every channel to pachd; ``reconnect_grace``: see ``PachdClient._reconnected``."""
    return list(GRPC_CHANNEL_OPTIONS) + [
        # Connections of its own: by default gRPC shares them between channels with the same
        # target and options, process-wide, so a new client to a pachd that just came back on
        # an address another client saw refused would inherit that client's reconnect back-off
        # and fail at once with its stale "Connection refused".
        ('grpc.use_local_subchannel_pool', 1),
        # After pachd was down, try again within seconds, not gRPC's default two minutes.
        ('grpc.initial_reconnect_backoff_ms', 250),
        # Kept under the reconnect grace (with gRPC's 20 % jitter) so that a
        # call waiting for pachd to come back sees at least one attempt.
        ('grpc.max_reconnect_backoff_ms', int(reconnect_grace * 1000 * 2 / 3)),
        # Keepalive pings find a peer that stopped answering (a frozen pachd, a proxy that
        # keeps the socket open but forwards nothing) while no deadline is running, e.g.
        # between two calls or on a quiet subscription. pachd accepts pings every 5 s, also
        # with no call in flight (its gRPC server's keepalive enforcement policy), so 10 s
        # stays within it.
        ('grpc.keepalive_time_ms', KEEPALIVE_SECONDS * 1000),
        ('grpc.keepalive_timeout_ms', KEEPALIVE_TIMEOUT_SECONDS * 1000),
        # gRPC core (1.85) also bounds a ping's answer by this, default one minute, and
        # without it a frozen pachd was found only 70 s after it froze instead of 15 s.
        ('grpc.http2.ping_timeout_ms', KEEPALIVE_TIMEOUT_SECONDS * 1000),
        ('grpc.keepalive_permit_without_calls', 1),
        ('grpc.http2.max_pings_without_data', 0),
    ]


def dial_target(address: PachdAddress, dial_ips: 'tuple[str, ...]' = ()) -> Tuple[str, list]:
    """The gRPC target to dial and the options it needs besides ``channel_options``.

    ``dial_ips``: connect to these IP addresses (the ones the SSRF check approved) rather than
    resolve the host again; the host as written stays the HTTP/2 authority and the name the
    TLS certificate must carry.
    """
    if not dial_ips:
        return address.target, []
    # gRPC's ipv4:/ipv6: targets take a list and are never resolved; one family per list.
    v4 = [ip for ip in dial_ips if ':' not in ip]
    target = (f'ipv4:{",".join(f"{ip}:{address.port}" for ip in v4)}' if v4 else
              f'ipv6:{",".join(f"[{ip}]:{address.port}" for ip in dial_ips)}')
    extra = [('grpc.default_authority', address.target)]
    if address.tls:
        extra.append(('grpc.ssl_target_name_override', address.host))
    return target, extra


def credentials(address: PachdAddress, root_certs: Optional[bytes]):
    """TLS credentials for a grpcs:// address (None for plain gRPC).

    Without explicit certs gRPC uses its bundled roots (or GRPC_DEFAULT_SSL_ROOTS_FILE_PATH).
    """
    import grpc

    return grpc.ssl_channel_credentials(root_certificates=root_certs) if address.tls else None
