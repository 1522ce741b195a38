"""Shared fixtures: real Label Studio models and API, a real local PFS server over gRPC."""
import os
import shutil
import tempfile

# pytest-django loads the settings before this file runs, so the environment Label
# Studio reads at start-up (data dir, Sentry, analytics) is set by scripts/test.sh.
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'label_studio_pachyderm.settings')

import pytest  # noqa: E402


@pytest.fixture(scope='session', autouse=True)
def _every_label_studio_model_is_registered(django_db_setup, django_db_blocker):
    """Some of Label Studio's models (Local Files storages, product tours) are registered only once
    something imports them, as its URLconf does. A transactional test's flush lists the tables of
    registered models, and on PostgreSQL TRUNCATE refuses a list that leaves out a table holding a
    foreign key into it; so a test file that makes no request would fail at its teardown. Load the
    URLconf up front."""
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


@pytest.fixture
def pfs(tmp_path):
    """A local PFS server on an ephemeral loopback port, no auth."""
    from label_studio_pachyderm.localpfs import start_server

    server = start_server('127.0.0.1', 0, str(tmp_path / 'pfs'))
    yield server
    server.stop()


@pytest.fixture
def pfs_client(pfs):
    from label_studio_pachyderm import pachd

    return pachd.PachdClient(pfs.address)


@pytest.fixture(autouse=True)
def _export_retries_end_with_the_test():
    """Export retries of one test never run into the next (or into its database teardown)."""
    yield
    from label_studio_pachyderm import outbox

    outbox.stop_retries()
    outbox._unreachable_until.clear()


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
    from rest_framework.test import APIClient

    client = APIClient()
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
