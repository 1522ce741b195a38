"""Shared fixtures: real Label Studio models and API, a real local PFS server over gRPC."""
import os
import shutil
import tempfile

# pytest-django loads the settings before this file runs, so the environment Label
# Studio reads at start-up (data dir, Sentry, analytics) is set by scripts/test.sh.
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'label_studio_pachyderm.settings')

import pytest  # noqa: E402


@pytest.fixture(scope='session', autouse=True)
def _every_label_studio_model_is_registered(request, django_db_blocker):
    """Some of Label Studio's models (Local Files storages, product tours) are registered only once
    something imports them, as its URLconf does. A transactional test's flush lists the tables of
    registered models, and on PostgreSQL TRUNCATE refuses a list that leaves out a table holding a
    foreign key into it; so a test file that makes no request would fail at its teardown. Load the
    URLconf up front, once the test database is there; a run with no database test (the pachd
    layer's, the local server's) sets up no database at all."""
    uses_db = any(item.get_closest_marker('django_db') or {'db', 'transactional_db'} & set(item.fixturenames)
                  for item in request.session.items)
    if not uses_db:
        return
    request.getfixturevalue('django_db_setup')
    from django.urls import get_resolver

    with django_db_blocker.unblock():  # some of Label Studio's modules read the database when imported
        get_resolver().url_patterns  # noqa: B018 (imports every view module, hence every model)

IMAGE_CONFIG = """
<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Cat"/><Label value="Dog"/>
  </RectangleLabels>
</View>
"""
TEXT_CONFIG = """
<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="pos"/><Choice value="neg"/>
  </Choices>
</View>
"""


# ----------------------------------------------------------------------------- the local PFS server
# The one place that starts it for a test (``pfs``), and the clients on it: the plugin's
# (``pfs_client``) and the official sdk's (``sdk_client``).

# Shaped like a real token and unusual enough that finding it in a message means a leak.
TOKEN = 'lsp0test0token0c0ffee0d00d0f00d0bad0cafe'
PROJECT = 'default'


def pytest_configure(config):
    config.addinivalue_line('markers', 'pfs_auth: the local PFS server of the test (pfs) requires TOKEN')
    config.addinivalue_line('markers', 'slow: takes seconds (sizes, killed processes, timers, real workers); '
                                       'the quick lane, scripts/test.sh --quick, leaves it out')


@pytest.fixture
def pfs(request, tmp_path):
    """A local PFS server on an ephemeral loopback port, its data in ``tmp_path / 'pfs'``; no auth,
    unless the test is marked ``@pytest.mark.pfs_auth`` (then every call needs TOKEN)."""
    from label_studio_pachyderm.localpfs import start_server

    token = TOKEN if request.node.get_closest_marker('pfs_auth') else None
    server = start_server('127.0.0.1', 0, str(tmp_path / 'pfs'), token)
    yield server
    server.stop()


def restart_pfs(server):
    """The stopped ``server`` started again: same port, same data, same auth."""
    from label_studio_pachyderm.localpfs import start_server

    return start_server('127.0.0.1', server.port, server.data_dir, TOKEN if server.auth_enabled else None)


@pytest.fixture
def pfs_client_timeout():
    """The per-call timeout of ``pfs_client``; a test module overrides this fixture to change it."""
    from label_studio_pachyderm import pachd

    return pachd.DEFAULT_TIMEOUT


@pytest.fixture
def pfs_client(pfs, pfs_client_timeout):
    """The plugin's pachd client on ``pfs`` (with TOKEN when the server requires it)."""
    from label_studio_pachyderm import pachd

    client = pachd.PachdClient(pfs.address, auth_token=TOKEN if pfs.auth_enabled else None,
                               timeout=pfs_client_timeout)
    yield client
    client.close()


@pytest.fixture
def sdk_client(pfs):
    """The official pachyderm_sdk client on ``pfs``, for the local PFS server's own tests."""
    from pachyderm_sdk import Client

    return Client(host='127.0.0.1', port=pfs.port, auth_token=TOKEN if pfs.auth_enabled else None)


@pytest.fixture
def sdk_repo(sdk_client):
    """An empty repo 'images' in the default project, made with the sdk."""
    from pachyderm_sdk.api import pfs as pfs_api

    sdk_client.pfs.create_repo(repo=pfs_api.Repo.from_uri('images'))
    return 'images'


def sdk_put(client, branch_uri, files, description=''):
    """One commit on ``branch_uri`` writing ``files`` ({path: bytes}) with the sdk; its id.

    Each file replaces what was there, as the sdk's ``put_file_from_bytes`` does (a delete,
    then the bytes), but all files go in one ModifyFile stream, as a real upload sends them:
    the local server holds every stream's end for a few milliseconds (to tell a close from a
    cancel), so a stream per file would spend that on each.
    """
    from pachyderm_sdk.api import pfs as pfs_api

    def operations():
        yield pfs_api.ModifyFileRequest(set_commit=commit)
        for path, data in files.items():
            yield pfs_api.ModifyFileRequest(delete_file=pfs_api.DeleteFile(path=path))
            yield pfs_api.ModifyFileRequest(add_file=pfs_api.AddFile(path=path, raw=data))

    commit = client.pfs.start_commit(branch=pfs_api.Branch.from_uri(branch_uri), description=description)
    client.pfs.modify_file(operations())
    client.pfs.finish_commit(commit=commit)
    return commit.id


def commit_ids(client, repo, branch=None):
    """The ids of ``repo``'s commits (on ``branch``), newest first, through the plugin's client."""
    return [c.id for c in client.list_commits(PROJECT, repo, branch)]


class StatusOf:
    """``with StatusOf(code, fragment):`` expects a grpc.RpcError with that code (and text)."""

    def __init__(self, code, fragment=None):
        self.code, self.fragment, self.error = code, fragment, None

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        import grpc

        assert kind is not None, f'expected {self.code}, the call succeeded'
        if not issubclass(kind, grpc.RpcError):
            return False
        assert value.code() == self.code, (value.code(), value.details())
        if self.fragment is not None:
            assert self.fragment in value.details(), value.details()
        self.error = value
        return True


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def mute_port():
    """A loopback port that accepts TCP connections and never says a word (no HTTP/2)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)  # hold it open, read nothing, write nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(1)
    for conn in accepted:
        conn.close()
    listener.close()


@pytest.fixture(autouse=True)
def _export_retries_end_with_the_test():
    """Export retries of one test never run into the next (or into its database teardown)."""
    yield
    from label_studio_pachyderm.exports import outbox

    outbox.stop_retries()
    outbox._unreachable_until.clear()


@pytest.fixture(autouse=True)
def _exports_written_at_once(settings):
    # Tests read the repository right after each change; the coalescing window has tests of its own.
    settings.PACHYDERM_EXPORT_COALESCE_SECONDS = 0


@pytest.fixture(autouse=True)
def _allow_loopback_pachd(settings):
    # Label Studio's SSRF protection bans loopback; tests dial their own local server.
    settings.PACHYDERM_ALLOWED_HOSTS = ['127.0.0.1']


def make_user(email, org_title='Org'):
    from organizations.models import Organization
    from users.models import User

    user = User.objects.create_user(email=email, password='pass12345')
    org = Organization.create_organization(created_by=user, title=org_title)
    user.active_organization = org
    user.save()
    return user


def make_project(user, label_config=IMAGE_CONFIG, title='Project'):
    from projects.models import Project

    return Project.objects.create(
        title=title, created_by=user, organization=user.active_organization, label_config=label_config
    )


@pytest.fixture
def user(db):
    return make_user('owner@example.com')


@pytest.fixture
def api(user):
    from written_client import WrittenAPIClient

    client = WrittenAPIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def project(user):
    return make_project(user)


@pytest.fixture
def text_project(user):
    return make_project(user, TEXT_CONFIG, title='Text')


@pytest.fixture
def outsider_api(db):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(make_user('outsider@example.com', org_title='Other org'))
    return client


@pytest.fixture(scope='session')
def django_db_modify_db_settings(tmp_path_factory):
    """A file-based SQLite test database, so a real RQ worker process can share it."""
    from django.conf import settings

    db = settings.DATABASES['default']
    if db['ENGINE'].endswith('sqlite3'):
        # On tmpfs when there is one: Label Studio's ~200 migrations fsync a lot on disk.
        base = tempfile.mkdtemp(prefix='lsp-db-', dir='/dev/shm') if os.path.isdir('/dev/shm') else str(
            tmp_path_factory.mktemp('db'))
        db.setdefault('TEST', {})['NAME'] = os.path.join(base, 'test.sqlite3')
        yield
        shutil.rmtree(base, ignore_errors=True)  # a run leaves no database behind
        return
    yield


def require_service(name: str, reachable: bool, how: str):
    """Fail loudly in CI when a service a test needs is absent; skip (visibly) elsewhere."""
    if reachable:
        return
    message = f'{name} is not reachable: {how}'
    if os.environ.get('CI'):
        pytest.fail(message)
    pytest.skip(message)
