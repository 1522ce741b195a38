"""Checks that the plugin's base.html extends Label Studio's own base.html.

Django lets a template extend a template of the same name found later in the
search path. This renders Label Studio's real base.html through a template
engine configured the way the plugin configures Label Studio's
(DIRS = [plugin templates, Label Studio templates]) and checks that the page has
Label Studio's scripts followed by ours, exactly once.

Run with the project's Python:  .venv/bin/python web/e2e/template_check.py
"""
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import django
import label_studio
from django.conf import settings

REPO = Path(__file__).resolve().parents[2]
PLUGIN_TEMPLATES = REPO / 'label_studio_pachyderm' / 'templates'
LS_DIR = Path(label_studio.__file__).parent
SCRIPT = 'label_studio_pachyderm/pachyderm-provider.js'


def configure() -> None:
    # Label Studio imports its apps as top-level packages.
    sys.path.insert(0, str(LS_DIR))
    data_dir = tempfile.mkdtemp(prefix='ls-template-check-')
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    os.environ['LABEL_STUDIO_BASE_DATA_DIR'] = data_dir
    # No error reporting or version check calls from a local check.
    for name in ('SENTRY_DSN', 'FRONTEND_SENTRY_DSN'):
        os.environ[name] = ''
    os.environ['LATEST_VERSION_CHECK'] = 'false'
    os.environ['COLLECT_ANALYTICS'] = 'false'
    os.environ['DJANGO_SETTINGS_MODULE'] = 'label_studio.core.settings.label_studio'
    # The same change the plugin settings make, before the template engine exists.
    settings.TEMPLATES[0]['DIRS'] = [str(PLUGIN_TEMPLATES), *settings.TEMPLATES[0]['DIRS']]
    django.setup()


def main() -> int:
    configure()
    from django.contrib.auth.models import AnonymousUser
    from django.template.loader import get_template, render_to_string
    from django.test import RequestFactory

    origin = get_template('base.html').origin.name
    assert origin == str(PLUGIN_TEMPLATES / 'base.html'), f'base.html resolved to {origin}'

    request = RequestFactory().get('/')
    request.user = AnonymousUser()
    html = render_to_string('base.html', {'user': AnonymousUser()}, request=request)

    if os.environ.get('TEMPLATE_CHECK_DUMP'):
        print(html)
    main_js = html.find('/react-app/main.js')
    ours = html.find(SCRIPT)
    assert main_js != -1, "Label Studio's main.js is missing: the parent template was not rendered"
    assert ours != -1, 'the Pachyderm script tag is missing'
    assert main_js < ours, 'the Pachyderm script must load after Label Studio bundles'
    assert html.count(SCRIPT) == 1, 'the Pachyderm script is included more than once'
    assert html.count('/react-app/main.js') == 1, "Label Studio's bundle is included more than once"
    assert 'window.APP_SETTINGS' in html, "Label Studio's page settings are missing"
    # Label Studio's pages extend "base.html" too; they must get ours (and so the script).
    page = render_to_string('projects/settings.html', {'user': AnonymousUser()}, request=request)
    assert page.count(SCRIPT) == 1, "a Label Studio page extending base.html lacks the script"
    print(f'ok: base.html resolves to {origin}, which extends Label Studio base.html;')
    print('    the script loads once, after main.js, on base.html and on pages extending it')
    return 0


if __name__ == '__main__':
    sys.exit(main())
