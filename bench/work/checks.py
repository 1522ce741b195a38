"""The files preview and "Check connection" of a synced storage, as the storage form calls them.

Both go through Label Studio's whole request stack (Django's test Client: middleware,
session auth, DRF permissions) with the stored storage's id, as the edit form sends it.
Each is timed ``passes`` times after one untimed request that loads the URLconf; the
slowest pass is the figure (a user's click is any one of them).
"""
from __future__ import annotations

import time

from .common import emit, make_owner, require


def storage_checks(p: dict) -> None:
    from django.conf import settings
    from django.test import Client
    from label_studio_pachyderm.models import PachydermImportStorage

    storage = PachydermImportStorage.objects.get(id=p['storage_id'])
    user = make_owner()
    browser = Client()
    browser.force_login(user)
    session = browser.session
    session['last_login'] = time.time()  # Label Studio's inactivity middleware wants the login stamp
    session.save()
    browser.cookies[settings.SESSION_COOKIE_NAME] = session.session_key
    warm = browser.get(f'/api/storages/pachyderm/{storage.id}')
    require(warm.status_code == 200, f'storage detail: HTTP {warm.status_code} {warm.content[:200]!r}')

    limit, passes = p.get('limit', 100), p.get('passes', 3)
    body = {'id': storage.id, 'project': storage.project_id}

    def files():
        response = browser.post('/api/storages/pachyderm/files', dict(body, limit=limit),
                                content_type='application/json')
        require(response.status_code == 200, f'files: HTTP {response.status_code} {response.content[:300]!r}')
        listed = response.json()['files']
        # `limit` files and the "more" marker: a preview that listed fewer did less than asked.
        require(len(listed) == limit + 1 and listed[-1]['key'] is None, f'files: {len(listed)} entries')
        require(all(f['key'].startswith('img/') for f in listed[:-1]), f'files: {listed[:2]}')

    def validate():
        response = browser.post('/api/storages/pachyderm/validate', body, content_type='application/json')
        require(response.status_code == 200, f'validate: HTTP {response.status_code} {response.content[:300]!r}')

    out = {}
    for name, call in (('files', files), ('validate', validate)):
        seconds = []
        for _ in range(passes):
            started = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - started)
        out[name] = dict(worst=max(seconds), best=min(seconds), passes=[round(s, 3) for s in seconds],
                         requests=passes)
    emit(dict(seconds=0, items=0, **out))
