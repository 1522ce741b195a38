"""Which pachd a storage dials, with which credentials, and whether it may.

One place for: the address and token of a storage (or the server's own
Pachyderm context when the operator allows it), TLS root certificates, and the
SSRF policy for user-supplied dial targets.
"""
from __future__ import annotations

import ipaddress
import socket

from django.conf import settings

from . import pachd


def _uses_server_config(storage) -> bool:
    return not (storage.pachd_address or '').strip() and getattr(settings, 'PACHYDERM_USE_SERVER_CONFIG', False)


def client_for(storage) -> pachd.PachdClient:
    address = (storage.pachd_address or '').strip()
    token = storage.auth_token or None
    root_certs = (storage.tls_root_certs or '').encode() or None
    if _uses_server_config(storage):
        context = pachd.config_context()
        address = context.address
        token = token or context.token
        root_certs = root_certs or context.root_certs
    if not address:
        raise pachd.PachdInvalidArgument('pachd address is required (for example grpc://localhost:30650)')
    parsed = pachd.parse_address(address)
    dial_ips = check_dial_allowed(parsed)
    return pachd.get_client(address, token, root_certs, settings.PACHYDERM_GRPC_TIMEOUT, dial_ips=dial_ips)


def pachd_identity(storage) -> str:
    """The identity (``PachdAddress.identity``) of the pachd a storage dials, the server's context included."""
    address = storage.pachd_address or ''
    if _uses_server_config(storage):
        try:
            address = pachd.config_context().address
        except pachd.PachdError:
            address = ''
    return pachd.address_identity(address)


def _allowlisted(address: pachd.PachdAddress) -> bool:
    for entry in getattr(settings, 'PACHYDERM_ALLOWED_HOSTS', None) or []:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry.startswith('['):  # [v6-address] or [v6-address]:port
            host, _, rest = entry[1:].partition(']')
            port = rest[1:] if rest.startswith(':') else ''
        elif entry.count(':') == 1:
            host, _, port = entry.partition(':')
        else:  # a name, a v4 address, or a bare v6 address
            host, port = entry, ''
        if host == address.host.lower() and (not port or port == '*' or port == str(address.port)):
            return True
    return False


def check_dial_allowed(address: pachd.PachdAddress) -> tuple:
    """Apply Label Studio's SSRF policy to a pachd address; return the IPs to dial.

    With ``SSRF_PROTECTION_ENABLED`` (Label Studio's default) an address that
    resolves into a banned range (loopback, private networks, ...) is refused
    unless the operator lists it in ``PACHYDERM_ALLOWED_HOSTS``: pachd usually
    lives on such an address, but which one is the operator's call, not a
    project member's.

    The addresses checked are the addresses dialled: gRPC connects to them and
    never resolves the name again, so a DNS answer that changes after the check
    (DNS rebinding) cannot send the connection elsewhere. Empty when no check
    applies (an allowlisted host, or protection off): gRPC resolves the name.
    """
    if _allowlisted(address) or not getattr(settings, 'SSRF_PROTECTION_ENABLED', True):
        return ()
    from core.utils.io import validate_ip

    try:
        infos = socket.getaddrinfo(address.host, address.port, 0, socket.SOCK_STREAM)
    except socket.gaierror:
        raise pachd.PachdUnavailable(f'cannot resolve the pachd host name {address.host!r}') from None
    for info in infos:
        ip = info[4][0]
        try:
            validate_ip(ip)
        except Exception:
            kind = 'loopback' if ipaddress.ip_address(ip).is_loopback else 'private or reserved'
            raise pachd.PachdInvalidArgument(
                f'pachd address {address.host}:{address.port} resolves to a {kind} address ({ip}), which '
                "Label Studio's SSRF protection blocks. An administrator can allow it with "
                f'PACHYDERM_ALLOWED_HOSTS={address.host}:{address.port}'
            ) from None
    # In resolver order, each once (getaddrinfo repeats an address per socket type).
    return tuple(dict.fromkeys(info[4][0] for info in infos))
