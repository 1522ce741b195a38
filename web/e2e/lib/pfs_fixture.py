"""Puts the walkthrough's starting data into a PFS server, in one Python process.

    python pfs_fixture.py ADDRESS SPEC_JSON

SPEC_JSON: {"source_repo": "images", "branch": "master", "folder": "frames",
            "target_repo": "labels", "images": [{"name", "width", "height", "colour", "box"}]}

Draws each image with the package's own PNG generator, commits them all to
source_repo@branch in one commit, creates an empty target_repo, then reads both
back through the plugin's client. Prints JSON: the commit, and each file's path,
size and sha256 as pachd lists them. Exits 1 with a one-line reason otherwise
(for example when the server already holds these repos: the walkthrough wants a
fresh one, so that what it checks later is what it wrote now).
"""
import hashlib
import json
import sys

from label_studio_pachyderm import pachd
from label_studio_pachyderm.demo import png


def main(address: str, spec: dict) -> dict:
    client = pachd.PachdClient(address)
    try:
        source, target, branch, folder = spec['source_repo'], spec['target_repo'], spec['branch'], spec['folder']
        for repo in (source, target):
            try:
                client.create_repo('default', repo, description='label-studio-pachyderm walkthrough')
            except pachd.PachdAlreadyExists:
                raise SystemExit(f'repo {repo!r} already exists: the walkthrough needs a fresh PFS server') from None
        files = {}
        for image in spec['images']:
            data = png(image['width'], image['height'], tuple(image['colour']), tuple(image['box']))
            files[f"{folder}/{image['name']}"] = data
        commit = client.write_commit('default', source, branch, [pachd.FileOp.put(path, data) for path, data in files.items()],
                                     description='walkthrough frames')

        listed = {entry.path: entry.size for entry in client.list_files('default', source, branch, '', recursive=True)}
        if set(listed) != set(files):
            raise SystemExit(f'{source}@{branch} lists {sorted(listed)}, expected {sorted(files)}')
        stored = {path: client.get_file_bytes('default', source, commit, path) for path in files}
        if stored != files:
            raise SystemExit(f'{source}@{commit} does not hold the bytes just written')
        target_commits = list(client.list_commits('default', target))
        if target_commits:
            raise SystemExit(f'{target} is not empty: {len(target_commits)} commit(s)')
        return {
            'commit': commit,
            'files': [{'path': path, 'size': listed[path], 'sha256': hashlib.sha256(data).hexdigest()}
                      for path, data in files.items()],
            'target_commits': 0,
        }
    finally:
        client.close()


if __name__ == '__main__':
    try:
        print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))))
    except pachd.PachdError as exc:
        print(f'error: {exc}', file=sys.stderr)
        sys.exit(1)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(f'error: {exc.code}', file=sys.stderr)
            sys.exit(1)
        raise
