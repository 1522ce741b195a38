"""The demo behind ``scripts/demo.sh``: sample data in PFS, and a project ready to label.

    python -m label_studio_pachyderm.demo seed ADDRESS
        images@master with a few generated images (unless it has files already), an empty labels repo,
        and the output repo detections whose master branch has provenance on images@master (the
        demo's model, demo_model.py, plays its pipeline).
    LS_PASSWORD=... python -m label_studio_pachyderm.demo project --url URL --email EMAIL --pachd-address ADDRESS
        (Label Studio running at URL with the account EMAIL) the project "Pachyderm demo": a
        bounding-box labeling config for those images, a source storage on images@master that
        watches for new commits and reads predictions from detections, synced, and a target storage
        on labels@master. Prints one JSON line: the project id, its task count (every version), the
        files on images@master, the tasks still to label (current versions without a label), what
        this run created.

The images are drawn here (no downloads): coloured boxes on a plain background,
something worth drawing a bounding box around.

The project is made through Label Studio's own REST API over HTTP, logged in through its
login page like a browser (the same views, serializers and checks as the UI), so it is
exactly what the wizard would have made. Every step looks for what a previous run
made first: a second run reuses the project and its storages and creates no duplicate tasks.
"""
from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

from . import pachd

SHAPES = [
    ('red-square.png', (220, 40, 40), (40, 40, 140, 140)),
    ('green-wide.png', (40, 170, 60), (20, 70, 220, 150)),
    ('blue-tall.png', (40, 80, 220), (90, 20, 150, 220)),
    ('orange-corner.png', (240, 140, 20), (150, 150, 230, 230)),
]


def png(width: int, height: int, colour, box) -> bytes:
    """A PNG of ``width`` x ``height`` with a filled ``box`` (x0, y0, x1, y1) in ``colour``."""
    x0, y0, x1, y1 = box
    rows = []
    for y in range(height):
        row = bytearray(b'\x00')  # filter type: none
        for x in range(width):
            row += bytes(colour) if x0 <= x < x1 and y0 <= y < y1 else b'\xf0\xf0\xf0'
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header)
            + chunk(b'IDAT', zlib.compress(b''.join(rows), 9)) + chunk(b'IEND', b''))


def seed(address: str, token: str | None = None) -> str:
    """Create images@master (unless it has files already), an empty labels repo, and the output repo
    detections, whose master branch has provenance on images@master, as a pipeline's output branch has:
    every commit on images@master opens a commit on detections@master with the same id, for the demo's
    model (demo_model.py) to fill and finish."""
    client = pachd.PachdClient(address, auth_token=token)
    for repo in ('images', 'labels', 'detections'):
        try:
            client.create_repo('default', repo, description='label-studio-pachyderm demo')
        except pachd.PachdAlreadyExists:
            pass
    try:
        head = client.branch_head('default', 'images', 'master')
        said = f'images@master already holds data (commit {head}); reusing it'
    except pachd.PachdNotFound:
        ops = [pachd.FileOp.put(name, png(256, 256, colour, box)) for name, colour, box in SHAPES]
        commit = client.write_commit('default', 'images', 'master', ops, description='demo images')
        said = f'put {len(ops)} images into images@master (commit {commit}); labels is empty'
    # After the images: a provenance branch that does not exist yet would be created with an empty
    # commit, which the check above would take for data.
    try:
        client.branch_head('default', 'detections', 'master')
    except pachd.PachdNotFound:
        client.create_branch('default', 'detections', 'master', provenance=[('default', 'images', 'master')])
        said += '; detections@master follows images@master'
    return said


# ----------------------------------------------------------------------------- the project
PROJECT_TITLE = 'Pachyderm demo'
SOURCE_TITLE = 'Demo images (images@master)'
TARGET_TITLE = 'Demo labels (labels@master)'
# One label per colour of the drawn shapes (SHAPES), in the same colours; the demo's model
# (demo_model.py) names a box by the label whose colour it is nearest to.
LABEL_COLOURS = (('Red', SHAPES[0][1]), ('Green', SHAPES[1][1]), ('Blue', SHAPES[2][1]), ('Orange', SHAPES[3][1]))
# What the demo's model puts in every prediction; the project pre-labels with this version
# (Label Studio shows only the predictions of the project's model version in the labeling screen).
MODEL_VERSION = 'demo-colour-boxes-1'
LABEL_CONFIG = (
    '<View>\n'
    '  <Image name="image" value="$image"/>\n'
    '  <RectangleLabels name="label" toName="image">\n'
    + ''.join(f'    <Label value="{name}" background="#{r:02x}{g:02x}{b:02x}"/>\n'
              for name, (r, g, b) in LABEL_COLOURS)
    + '  </RectangleLabels>\n'
    '</View>\n'
)


class DemoError(Exception):
    """A step of the project set-up failed; the message says which and what Label Studio answered."""


class _Api:
    """Label Studio's REST API over HTTP, with the session a browser gets from the login page."""

    def __init__(self, base_url: str, email: str, password: str):
        self.base = base_url.rstrip('/')
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self._request('GET', '/user/login/')  # sets the CSRF cookie the login form needs
        form = {'email': email, 'password': password, 'csrfmiddlewaretoken': self._csrf()}
        _, _, final_url = self._request('POST', '/user/login/', form=form)
        if '/user/login' in final_url:
            raise DemoError(f'Label Studio at {self.base} refused the login of {email!r} (wrong password?)')

    def _csrf(self) -> str:
        return next((c.value for c in self.cookies if c.name == 'csrftoken'), '')

    def _request(self, method: str, path: str, body=None, form=None):
        headers = {'X-CSRFToken': self._csrf(), 'Referer': self.base + '/'}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers['Content-Type'] = 'application/x-www-form-urlencoded'
        elif body is not None:
            data = json.dumps(body).encode()
            headers['Content-Type'] = 'application/json'
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=120) as response:
                return response.status, response.read(), response.geturl()
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.geturl()

    def call(self, method: str, path: str, body=None, ok=(200,)):
        status, content, _ = self._request(method.upper(), path, body=body)
        if status not in ok:
            raise DemoError(f'{method.upper()} {path} answered {status}: {content.decode(errors="replace")[:500]}')
        return json.loads(content) if content else None

    def items(self, path: str):
        answer = self.call('get', path)
        return answer.get('results', answer) if isinstance(answer, dict) else answer


def _wait_for_sync(api: _Api, path: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        storage = api.call('get', path)
        if storage['status'] in ('completed', 'completed_with_errors', 'failed'):
            break
        if time.monotonic() > deadline:
            raise DemoError(f'the sync of {path} did not finish within {timeout:.0f} s (status {storage["status"]})')
        time.sleep(0.5)
    if storage['status'] != 'completed':
        raise DemoError(f'the sync of {path} ended as {storage["status"]}: {storage.get("traceback") or storage.get("meta")}')
    return storage


def prepare_project(ls_url: str, email: str, password: str, address: str) -> dict:
    """The demo project, its labeling config and both storages (found or created), the source synced."""
    api = _Api(ls_url, email, password)
    created = []
    project = next((p for p in api.items('/api/projects/?page_size=1000') if p['title'] == PROJECT_TITLE), None)
    if project is None:
        project = api.call('post', '/api/projects/', {'title': PROJECT_TITLE, 'label_config': LABEL_CONFIG,
                                                       'description': 'Images from Pachyderm (images@master); '
                                                       'annotations are committed to labels@master.',
                                                       'model_version': MODEL_VERSION,
                                                       'show_collab_predictions': True},
                           ok=(201,))
        created.append('project')
    elif not project.get('model_version'):  # made by a run from before the demo had a model
        project = api.call('patch', f'/api/projects/{project["id"]}/', {'model_version': MODEL_VERSION})
        created.append('pre-labeling')
    pid = project['id']
    connection = {'project': pid, 'pachd_address': address, 'pach_project': 'default', 'branch': 'master'}

    sources = api.items(f'/api/storages/pachyderm/?project={pid}')
    source = next((s for s in sources if s['repo'] == 'images'), None)
    if source is None:
        source = api.call('post', '/api/storages/pachyderm/', {
            **connection, 'title': SOURCE_TITLE, 'repo': 'images', 'use_blob_urls': True,
            'recursive_scan': True, 'watch_commits': True, 'presign': False,
            # A changed image becomes a new task version (its old task keeps its labels).
            'changed_files': 'new_version',
            # The demo model's output (demo_model.py): a pre-annotation on every image.
            'predictions_repo': 'detections'}, ok=(201,))
        created.append('source storage')
    elif not source.get('predictions_repo'):  # made by a run from before the demo had a model
        source = api.call('patch', f'/api/storages/pachyderm/{source["id"]}', {'predictions_repo': 'detections'})
        created.append('predictions on the source storage')
    # Incremental: a second run reads only what changed since the last sync (usually nothing).
    api.call('post', f'/api/storages/pachyderm/{source["id"]}/sync', ok=(200, 201))

    synced = _wait_for_sync(api, f'/api/storages/pachyderm/{source["id"]}')

    targets = api.items(f'/api/storages/export/pachyderm?project={pid}')
    if not any(t['repo'] == 'labels' for t in targets):
        api.call('post', '/api/storages/export/pachyderm', {**connection, 'title': TARGET_TITLE, 'repo': 'labels'},
                 ok=(201,))
        created.append('target storage')
    tasks = api.call('get', f'/api/projects/{pid}/')['task_number']
    return {'project': pid, 'tasks': tasks, 'files': _files_on_branch(address, synced),
            'unlabeled': _unlabeled_tasks(api, pid), 'created': created}


def _files_on_branch(address: str, storage: dict) -> int:
    """The files of images@master as the sync just read them (its commit: the branch head then)."""
    client = pachd.PachdClient(address)
    commit = storage.get('last_synced_commit') or client.branch_head('default', 'images', 'master')
    return sum(1 for _ in client.list_files('default', 'images', commit))


def _unlabeled_tasks(api: _Api, pid: int) -> int:
    """Tasks left to label: those of a file's current version (not superseded, not of a deleted
    file) that are not labeled yet. The project's task count also holds every older version."""
    unlabeled, seen, page = 0, 0, 1
    while True:
        answer = api.call('get', f'/api/tasks?project={pid}&page_size=100&page={page}')
        batch = answer.get('tasks', [])
        unlabeled += sum(1 for task in batch
                         if task.get('pachyderm_version', 'current') in ('current', '') and not task.get('is_labeled'))
        seen += len(batch)
        if not batch or seen >= answer.get('total', 0):
            return unlabeled
        page += 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m label_studio_pachyderm.demo')
    commands = parser.add_subparsers(dest='command', required=True)
    seed_parser = commands.add_parser('seed', help='sample data in PFS')
    seed_parser.add_argument('address')
    project_parser = commands.add_parser('project', help='the demo project in Label Studio')
    project_parser.add_argument('--url', required=True, help="Label Studio's address, e.g. http://localhost:8080")
    project_parser.add_argument('--email', required=True, help='the Label Studio account that owns the project')
    project_parser.add_argument('--password-env', default='LS_PASSWORD', metavar='VARIABLE',
                                help='environment variable holding its password (not on the command line)')
    project_parser.add_argument('--pachd-address', required=True, help='as the storages should dial it')
    args = parser.parse_args(argv)
    try:
        if args.command == 'seed':
            print(seed(args.address))
        else:
            password = os.environ.get(args.password_env, '')
            print(json.dumps(prepare_project(args.url, args.email, password, args.pachd_address)))
    except (DemoError, pachd.PachdError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
