"""What the plugin dials and what it says about the peer: servers that are not pachd, the
client cache, and dialling the address the SSRF check approved. Loopback servers only."""
from __future__ import annotations

import http.server
import json
import socket
import threading

import pytest
from label_studio_pachyderm import pachd

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ['django.contrib.auth.hashers.MD5PasswordHasher']


# ----------------------------------------------------------------------------- servers that are not pachd
@pytest.fixture
def http1_server():
    """Python's http.server on a loopback port (HTTP/1.x)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def h2_server():
    """An HTTP/2 (cleartext) web server that answers every request with ``status``: not gRPC.

    Yields a function that sets the status and returns the port.
    """
    import h2.config
    import h2.connection
    import h2.events

    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(16)
    state = {'status': '404', 'authorities': []}
    stop = threading.Event()

    def serve(conn):
        h2conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        h2conn.initiate_connection()
        conn.sendall(h2conn.data_to_send())
        with conn:
            while not stop.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                for event in h2conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        state['authorities'].append(dict(event.headers).get(b':authority', b'').decode())
                        h2conn.send_headers(event.stream_id, [(':status', state['status']),
                                                              ('content-type', 'text/html')], end_stream=True)
                conn.sendall(h2conn.data_to_send())

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.settimeout(None)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()

    def answering(status: str) -> int:
        state['status'] = status
        return listener.getsockname()[1]

    answering.authorities = state['authorities']
    yield answering
    stop.set()
    listener.close()


@pytest.mark.parametrize('status', ['404', '401', '403', '503'])
def test_an_http2_web_server_is_not_pachd(h2_server, status):
    port = h2_server(status)
    client = pachd.PachdClient(f'127.0.0.1:{port}', timeout=5)
    try:
        with pytest.raises(pachd.PachdUnavailable) as info:
            list(client.list_repos('default'))
    finally:
        client.close()
    message = str(info.value)
    # Not "does not support this call", not "rejected the auth token": the peer is not pachd at all.
    assert message.startswith(f'grpc://127.0.0.1:{port} does not answer as pachd: an HTTP server answered '
                              f'with status {status}'), message
    assert 'token' not in message and 'support' not in message


def test_an_http1_web_server_is_not_pachd(http1_server):
    client = pachd.PachdClient(f'127.0.0.1:{http1_server}', timeout=5)
    try:
        with pytest.raises(pachd.PachdUnavailable) as info:
            client.inspect_file('default', 'images', 'master', 'a.png')
    finally:
        client.close()
    assert str(info.value).startswith(f'grpc://127.0.0.1:{http1_server} does not answer as pachd: '), info.value


def test_validate_says_the_address_is_not_pachd(api, project, h2_server, http1_server, settings):
    for port in (h2_server('404'), http1_server):
        body = {'project': project.id, 'pachd_address': f'127.0.0.1:{port}', 'repo': 'images'}
        response = api.post('/api/storages/pachyderm/validate', body, format='json')
        assert response.status_code == 400, response.content
        errors = response.json()['validation_errors']
        assert list(errors) == ['pachd_address'], errors
        assert 'does not answer as pachd' in errors['pachd_address'][0], errors
        assert 'UNIMPLEMENTED' not in json.dumps(errors)


# ----------------------------------------------------------------------------- a sync that cannot start
@pytest.mark.parametrize('route', [
    '/api/storages/pachyderm/{id}/sync',  # what Label Studio's storage card sends
    '/api/storages/pachyderm/import/{id}/sync/',
    '/api/storages/export/pachyderm/{id}/sync',
    '/api/storages/pachyderm/export/{id}/sync/',
])
def test_sync_with_pachd_down_ends_failed_with_the_reason(api, project, pfs, pfs_client, route):
    from label_studio_pachyderm.models import PachydermExportStorage, PachydermImportStorage

    pfs_client.create_repo('default', 'images')
    model = PachydermExportStorage if 'export' in route else PachydermImportStorage
    storage = model.objects.create(project=project, title='s', pachd_address=pfs.address, repo='images',
                                   status='completed', meta={'commit': 'previous'})
    pfs.stop()
    response = api.post(route.format(id=storage.id), format='json')
    # The storage object, as after any failed sync: not a 4xx the UI would show as "Runtime error".
    assert response.status_code == 200, response.content
    body = response.json()
    assert body['id'] == storage.id and body['status'] == 'failed', body
    assert body['traceback'].startswith(f'cannot reach pachd at {pfs.address}'), body['traceback']
    assert body['meta']['error'].startswith('cannot reach pachd'), body['meta']
    storage.refresh_from_db()
    assert storage.status == 'failed' and storage.traceback == body['traceback']


def test_sync_option_errors_stay_a_400(api, project, pfs, pfs_client):
    from label_studio_pachyderm.models import PachydermImportStorage

    storage = PachydermImportStorage.objects.create(project=project, title='s', pachd_address=pfs.address,
                                                    repo='images', status='completed')
    response = api.post(f'/api/storages/pachyderm/{storage.id}/sync', {'full_rescan': 'maybe'}, format='json')
    assert response.status_code == 400 and 'full_rescan' in response.json()['validation_errors']
    storage.refresh_from_db()
    assert storage.status == 'completed'


# ----------------------------------------------------------------------------- the client cache
def _channel_is_closed(channel) -> bool:
    try:
        channel.unary_unary('/pfs_v2.API/InspectFile').future(b'', timeout=5).cancel()
    except ValueError as exc:  # gRPC: "Cannot invoke RPC: Channel closed!"
        return 'closed' in str(exc).lower()
    return False


def test_evicted_clients_are_closed_once_unused_never_mid_call(pfs, pfs_client, monkeypatch):
    import gc
    import weakref

    from label_studio_pachyderm.pachd import shared

    payload = bytes(range(256)) * 4096 * 4  # 4 MiB: several GetFile messages
    pfs_client.create_repo('default', 'images')
    commit = pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('big.bin', payload)])
    shared.clear_client_cache()
    monkeypatch.setattr(shared, '_CLIENTS_MAX', 2)
    try:
        # The timeout is part of the cache key: three keys for the same server.
        busy = pachd.get_client(pfs.address, timeout=11)
        idle = pachd.get_client(pfs.address, timeout=12)
        busy_channel, idle_channel = busy._raw_channel, idle._raw_channel
        stream = busy.read_file('default', 'images', commit, 'big.bin')
        chunks = stream.iter_chunks(64 * 1024)
        received = [next(chunks)]  # a call in flight on "busy"

        pachd.get_client(pfs.address, timeout=13)  # evicts "busy" (the oldest)
        pachd.get_client(pfs.address, timeout=14)  # evicts "idle"
        assert pachd.get_client(pfs.address, timeout=11) is not busy  # no longer cached
        del busy
        gc.collect()
        # The evicted client is still in use: its stream goes on to the end, unharmed.
        received.extend(chunks)
        assert b''.join(received) == payload
        assert not _channel_is_closed(busy_channel)
        assert len(list(idle.list_repos('default'))) == 1  # evicted, still referenced: still works
        assert not _channel_is_closed(idle_channel)

        # Once nothing refers to them any more, their channels are closed: no cycle keeps them.
        freed = weakref.ref(idle)
        del idle
        assert freed() is None and _channel_is_closed(idle_channel)
        stream.close()
        del stream, chunks
        assert _channel_is_closed(busy_channel)
        # Clients still cached are untouched.
        assert len(list(pachd.get_client(pfs.address, timeout=14).list_repos('default'))) == 1
    finally:
        shared.clear_client_cache()


# ----------------------------------------------------------------------------- the checked address is dialled
NAME = 'pachd-rebinding.test'  # a reserved name (RFC 6761): only the patched resolver knows it


@pytest.fixture
def resolver(monkeypatch, settings):
    """Python's resolver (the one the SSRF check uses) answers NAME with ``answers['ip']``.

    gRPC resolves names in its own C core, which this does not reach: a client that
    resolved NAME again could not connect at all.
    """
    from label_studio_pachyderm import connection

    real = connection.socket.getaddrinfo
    answers = {'ip': '127.0.0.1'}

    def getaddrinfo(host, port, *args, **kwargs):
        if host == NAME:
            family = socket.AF_INET6 if ':' in answers['ip'] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, '', (answers['ip'], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(connection.socket, 'getaddrinfo', getaddrinfo)
    settings.PACHYDERM_ALLOWED_HOSTS = []
    settings.SSRF_PROTECTION_ENABLED = True
    settings.USE_DEFAULT_BANNED_SUBNETS = False  # loopback passes Label Studio's check here
    settings.USER_ADDITIONAL_BANNED_SUBNETS = ['10.0.0.0/8']
    return answers


def _storage(address):
    from types import SimpleNamespace

    return SimpleNamespace(pachd_address=address, auth_token=None, tls_root_certs='')


def test_grpc_dials_the_address_the_check_approved(resolver, pfs, pfs_client):
    from label_studio_pachyderm import connection

    pfs_client.create_repo('default', 'images')
    address = f'grpc://{NAME}:{pfs.port}'
    assert connection.check_dial_allowed(pachd.parse_address(address)) == ('127.0.0.1',)
    client = connection.client_for(_storage(address))
    assert [r.name for r in client.list_repos('default')] == ['images']  # reached without resolving NAME
    assert client.address.url == address  # messages still name the address as written

    # The name now points into a banned range: the next dial is refused, and the client
    # made before keeps dialling what was checked (its channel never resolves NAME).
    resolver['ip'] = '10.0.0.7'
    with pytest.raises(pachd.PachdInvalidArgument, match=r'private or reserved address \(10\.0\.0\.7\)'):
        connection.client_for(_storage(address))
    client.close()  # reconnects from scratch on the next call
    client = pachd.get_client(address, None, None, client.timeout, dial_ips=('127.0.0.1',))
    assert [r.name for r in client.list_repos('default')] == ['images']


def test_the_written_host_stays_the_authority(resolver, h2_server):
    from label_studio_pachyderm import connection

    port = h2_server('404')
    with pytest.raises(pachd.PachdUnavailable, match='does not answer as pachd'):
        list(connection.client_for(_storage(f'{NAME}:{port}')).list_repos('default'))
    assert h2_server.authorities and set(h2_server.authorities) == {f'{NAME}:{port}'}


def test_localhost_is_dialled_at_its_checked_addresses(resolver, pfs, pfs_client, settings):
    from label_studio_pachyderm import connection

    pfs_client.create_repo('default', 'images')
    checked = connection.check_dial_allowed(pachd.parse_address(f'localhost:{pfs.port}'))
    assert '127.0.0.1' in checked and len(set(checked)) == len(checked)
    client = connection.client_for(_storage(f'localhost:{pfs.port}'))
    assert [r.name for r in client.list_repos('default')] == ['images']
    # Allowlisted, or protection off: nothing is checked, and gRPC resolves the name as usual.
    settings.PACHYDERM_ALLOWED_HOSTS = [f'localhost:{pfs.port}']
    assert connection.check_dial_allowed(pachd.parse_address(f'localhost:{pfs.port}')) == ()
    assert len(list(connection.client_for(_storage(f'localhost:{pfs.port}')).list_repos('default'))) == 1
    settings.PACHYDERM_ALLOWED_HOSTS = []
    settings.SSRF_PROTECTION_ENABLED = False
    assert connection.check_dial_allowed(pachd.parse_address(f'localhost:{pfs.port}')) == ()


# ----------------------------------------------------------------------------- connections are the client's own
@pytest.mark.slow
def test_a_new_client_does_not_inherit_another_clients_reconnect_back_off(tmp_path):
    """gRPC shares connections between channels of the same target and options, process-wide.

    A client that saw its pachd refuse connections is backing off; a new client to a pachd
    that is now up on that very address (restarted, or a new server handed the freed port)
    must connect, not fail at once with the other client's stale "Connection refused".
    """
    from label_studio_pachyderm.localpfs import start_server

    first = start_server('127.0.0.1', 0, str(tmp_path / 'a'))
    port = first.port
    old = pachd.PachdClient(first.address, timeout=5)
    old.create_repo('default', 'images')
    first.stop()
    for _ in range(4):  # failed attempts grow the old client's back-off
        with pytest.raises(pachd.PachdUnavailable):
            old.create_repo('default', 'again')
    second = start_server('127.0.0.1', port, str(tmp_path / 'b'))
    try:
        new = pachd.PachdClient(second.address, timeout=5)
        new.create_repo('default', 'images')  # failed at once with "Connection refused" before
        assert [r.name for r in new.list_repos('default')] == ['images']
        new.close()
    finally:
        old.close()
        second.stop()
