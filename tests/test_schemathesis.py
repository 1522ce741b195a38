"""Schemathesis against the plugin's OpenAPI schema, in-process over WSGI.

The schema is the one Label Studio serves at /docs/api/schema/json/, cut down to the
plugin's paths (both URL layouts). Requests go through Django's real WSGI handler (all
of Label Studio's middleware, its token authentication) as a member of a real project;
the storages point at a real local PFS server. Every operation must answer without a
server error, with a status code, content type and body its schema documents, and must
refuse data its schema does not allow.

Reproducible: a fixed seed, derandomized generation, no example database.
"""
from __future__ import annotations

import re
import socket
import types
import zlib

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection

from label_studio_pachyderm import connection, pachd
from test_openapi import ROUTES  # every plugin route, both layouts

# Django's WSGI handler closes the database connection after each request, which a test
# wrapped in one transaction would not survive: run on a committed database instead.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    # Label Studio's own token bookkeeping (simplejwt's OutstandingToken), not the plugin's.
    pytest.mark.filterwarnings('ignore:DateTimeField OutstandingToken.expires_at received a naive datetime'),
]

SCHEMA_URL = '/docs/api/schema/json/'
TAG = 'Storage: Pachyderm'
PLUGIN_PATH = re.compile(r'^/api/storages/(export/)?pachyderm(/|$)')

CONFIG = SchemathesisConfig.from_dict({
    'seed': 20251121,
    'generation': {'max-examples': 12, 'deterministic': True, 'database': 'none'},
    'phases': {
        # The coverage phase walks every boundary of every field: thousands of requests, minutes.
        'coverage': {'enabled': False},
        'stateful': {'enabled': False},
    },
    'checks': {
        # A schema-valid body is still refused (400) when pachd has no such repo, branch or
        # files: "valid data is accepted" is not a property of an API that checks a remote system.
        'positive_data_acceptance': {'enabled': False},
    },
})


def _numeric_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    """Resolve IP literals (and localhost) only: fuzzed host names never reach DNS."""
    if host == 'localhost':
        host = '127.0.0.1'
    return socket.getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)


# What connection.check_dial_allowed sees as `socket` during this test.
_HERMETIC_SOCKET = types.SimpleNamespace(
    getaddrinfo=_numeric_getaddrinfo, gaierror=socket.gaierror, SOCK_STREAM=socket.SOCK_STREAM)


@pytest.fixture
def storages(project, pfs, pfs_client):
    """A source and a target storage on a real local PFS, so `{id}` routes hit real objects."""
    from label_studio_pachyderm.models import PachydermExportStorage, PachydermImportStorage

    pfs_client.create_repo('default', 'images')
    pfs_client.create_repo('default', 'labels')
    pfs_client.write_commit('default', 'images', 'master', [
        pachd.FileOp.put('a.png', b'\x89PNG\r\n\x1a\n' + b'0' * 64),
        pachd.FileOp.put('sub/b.png', b'\x89PNG\r\n\x1a\n' + b'1' * 64),
        pachd.FileOp.put('tasks.json', b'[{"image": "x"}]'),
    ])
    source = PachydermImportStorage.objects.create(
        project=project, title='src', pachd_address=pfs.address, repo='images', use_blob_urls=True)
    target = PachydermExportStorage.objects.create(
        project=project, title='dst', pachd_address=pfs.address, repo='labels', prefix='ls')
    return {'source': source, 'target': target}


@pytest.fixture
def token(user):
    """A Label Studio API token the WSGI stack accepts (`Authorization: Token ...`)."""
    from rest_framework.authtoken.models import Token

    jwt = user.active_organization.jwt  # LS 1.23 turns legacy tokens off for new organizations
    jwt.legacy_api_tokens_enabled = True
    jwt.save()
    return Token.objects.get_or_create(user=user)[0].key


@pytest.fixture
def wsgi_app():
    from django.core.handlers.wsgi import WSGIHandler

    return WSGIHandler()


@pytest.fixture
def pachyderm_schema(wsgi_app, token, storages, settings, monkeypatch):
    from werkzeug import Client

    settings.PACHYDERM_GRPC_TIMEOUT = 2  # a fuzzed public address must not hold the test for long
    monkeypatch.setattr(connection, 'socket', _HERMETIC_SOCKET)

    response = Client(wsgi_app).get(SCHEMA_URL, headers={'Authorization': f'Token {token}'})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    raw = response.get_json()
    raw['paths'] = {path: ops for path, ops in raw['paths'].items() if PLUGIN_PATH.match(path)}
    assert set(ROUTES) <= set(raw['paths']), set(ROUTES) - set(raw['paths'])
    for path, ops in raw['paths'].items():
        for method, operation in ops.items():
            if isinstance(operation, dict) and 'responses' in operation:
                assert operation['tags'] == [TAG], (path, method, operation['tags'])
    schema = schemathesis.openapi.from_dict(raw, config=CONFIG)
    schema.app = wsgi_app
    schema.config.update(headers={'Authorization': f'Token {token}'})
    return schema


schema = schemathesis.pytest.from_fixture('pachyderm_schema')


@pytest.mark.slow
@schema.parametrize()
def test_plugin_api_conforms_to_its_schema_without_server_errors(case, storages, project, pfs):
    if case.media_type == 'multipart/form-data' and not isinstance(case.body, dict):
        return  # werkzeug's test client cannot encode a scalar as multipart: nothing to send
    if _names_a_sibling_route(case):
        return  # e.g. DELETE .../export/{id}/ with id "validate" is DELETE .../export/validate/: another operation
    _restore(storages)
    # Two valid cases in three, chosen by a stable hash of the case (reproducible run to run).
    real = zlib.crc32(repr(case).encode('utf-8', 'replace')) % 3 != 0
    if real and case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE:
        _point_at_real_objects(case, storages, project, pfs)
    excluded = []
    if case.media_type and case.media_type != 'application/json':
        # Form fields are strings on the wire: `title=1.5` or `traceback=false` are valid strings
        # there, though schemathesis generated them as numbers or booleans to violate the schema.
        excluded.append(negative_data_rejection)
    case.call_and_validate(excluded_checks=excluded)


def _names_a_sibling_route(case) -> bool:
    """Whether a (negative) path parameter turns the URL into another route's, such as id=validate."""
    from urllib.parse import quote

    from django.urls import Resolver404, resolve

    params = case.path_parameters or {}
    if not params:
        return False
    try:
        wanted = resolve(case.path.format(**{name: 1 for name in params})).url_name
        got = resolve(case.path.format(**{name: quote(str(value), safe='') for name, value in params.items()}))
    except (Resolver404, KeyError, IndexError, ValueError):
        return False
    return got.url_name != wanted


def _point_at_real_objects(case, storages, project, pfs):
    """Address the real project, storages and pachd, so the case gets past the first lookups
    and exercises the connection checks, syncs and updates for real."""
    export = '/export' in case.path
    if 'id' in (case.path_parameters or {}):
        case.path_parameters = {**case.path_parameters, 'id': storages['target' if export else 'source'].id}
    if 'project' in (case.query or {}):
        case.query = {**case.query, 'project': project.id}
    if isinstance(case.body, dict) and case.method.upper() in ('POST', 'PATCH') and not case.path.rstrip('/').endswith(
            'sync'):
        body = {**case.body, 'pachd_address': pfs.address, 'repo': 'labels' if export else 'images'}
        body.pop('auth_token', None)  # the local PFS has no auth
        if 'project' in body or case.method.upper() == 'POST':
            body['project'] = project.id
        case.body = body


def _restore(storages):
    """Put the pre-created storages back as they were: a fuzzed DELETE may have removed them,
    a PATCH may have pointed them at a missing repo or switched syncing off."""
    for storage in storages.values():
        fields = {
            'project_id': storage.project_id, 'title': storage.title, 'pachd_address': storage.pachd_address,
            'auth_token': None, 'tls_root_certs': '', 'pach_project': 'default', 'repo': storage.repo,
            'branch': 'master', 'prefix': storage.prefix, 'regex_filter': '', 'recursive_scan': True,
            'use_blob_urls': storage.use_blob_urls, 'synchronizable': True, 'status': 'initialized',
        }
        if hasattr(storage, 'commit'):
            fields['commit'] = ''
        type(storage).objects.update_or_create(pk=storage.pk, defaults=fields)
