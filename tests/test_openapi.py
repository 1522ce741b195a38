"""The OpenAPI schema documents every Pachyderm route, in both layouts, under one tag."""
import pytest

pytestmark = pytest.mark.django_db

ROUTES = {
    '/api/storages/pachyderm/': {'get', 'post'},
    '/api/storages/pachyderm/{id}': {'get', 'patch', 'delete'},
    '/api/storages/pachyderm/{id}/sync': {'post'},
    '/api/storages/pachyderm/validate': {'post'},
    '/api/storages/pachyderm/files': {'post'},
    '/api/storages/pachyderm/form': {'get'},
    '/api/storages/export/pachyderm': {'get', 'post'},
    '/api/storages/export/pachyderm/{id}': {'get', 'patch', 'delete'},
    '/api/storages/export/pachyderm/{id}/sync': {'post'},
    '/api/storages/export/pachyderm/validate': {'post'},
    '/api/storages/export/pachyderm/form': {'get'},
    '/api/storages/pachyderm/import/': {'get', 'post'},
    '/api/storages/pachyderm/import/{id}/': {'get', 'patch', 'delete'},
    '/api/storages/pachyderm/import/{id}/sync/': {'post'},
    '/api/storages/pachyderm/import/validate/': {'post'},
    '/api/storages/pachyderm/import/form-layout/': {'get'},
    '/api/storages/pachyderm/export/': {'get', 'post'},
    '/api/storages/pachyderm/export/{id}/': {'get', 'patch', 'delete'},
    '/api/storages/pachyderm/export/{id}/sync/': {'post'},
    '/api/storages/pachyderm/export/validate/': {'post'},
    '/api/storages/pachyderm/export/form-layout/': {'get'},
}


def test_every_route_documented_under_the_pachyderm_tag(api):
    r = api.get('/docs/api/schema/json/')
    assert r.status_code == 200
    paths = r.json()['paths']
    for route, methods in ROUTES.items():
        assert route in paths, route
        documented = {m for m in paths[route] if m in ('get', 'post', 'patch', 'put', 'delete')}
        assert methods <= documented, (route, documented)
        for method in methods:
            operation = paths[route][method]
            assert operation['tags'] == ['Storage: Pachyderm'], (route, method, operation.get('tags'))
            assert operation.get('summary'), (route, method)
    schema = r.json()['components']['schemas']
    for prefix in ('PachydermImportStorage', 'PachydermExportStorage'):
        names = [k for k in schema if k.startswith(prefix)]
        accepting = [k for k in names if 'auth_token' in schema[k].get('properties', {})]
        assert accepting, f'{prefix}: no request schema takes auth_token'
        for name in accepting:  # only request bodies (or write-only fields) may mention the token
            prop = schema[name]['properties']['auth_token']
            assert name.endswith('Request') or prop.get('writeOnly') is True, name


def test_versioning_and_format_fields_are_documented(api):
    """changed_files (source) and export_formats (target), with their values, in every request schema."""
    schema = api.get('/docs/api/schema/json/').json()['components']['schemas']

    def resolved(prop):
        for ref in [prop.get('$ref')] + [p.get('$ref') for p in prop.get('allOf', []) + prop.get('oneOf', [])]:
            if ref:
                return schema[ref.rsplit('/', 1)[1]]
        return prop

    source = [k for k in schema if k.startswith('PachydermImportStorage') and k.endswith('Request')]
    target = [k for k in schema if k.startswith('PachydermExportStorage') and k.endswith('Request')]
    assert source and target
    for name in source:
        changed = resolved(schema[name]['properties']['changed_files'])
        assert set(changed['enum']) >= {'keep', 'new_version'}, name
        assert 'export_formats' not in schema[name]['properties'], name
    for name in target:
        shapes = schema[name]['properties']['export_formats']['oneOf']  # a list, or the forms' comma-separated text
        assert {'type': 'array', 'items': {'type': 'string', 'example': 'COCO'}, 'uniqueItems': True} in shapes, name
        assert any(shape['type'] == 'string' for shape in shapes), name
        assert 'changed_files' not in schema[name]['properties'], name
