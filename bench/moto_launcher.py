"""The S3 peer: moto's threaded server, plus a seeding side door. Runs in bench/.venv-moto.

    bench/.venv-moto/bin/python bench/moto_launcher.py --port 5000

It starts moto's ThreadedMotoServer (the same werkzeug app ``moto_server`` serves)
and then reads JSON commands, one per line, on stdin:

    {"op": "bucket", "bucket": "media"}
    {"op": "seed", "bucket": "media", "kind": "media", "start": 0, "count": 10000, "batch": ""}
    {"op": "count", "bucket": "export"}

and answers each with one JSON line on stdout. Seeding goes straight into moto's
in-memory backend, the state a PUT would leave: through HTTP moto accepts only
~350 PUT/s on this kind of machine, which would spend minutes of every run
filling buckets. Label Studio itself only ever talks to the HTTP server.
"""
import argparse
import importlib.util
import json
import os
import sys

from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer


def _load_content():
    """bench/content.py by file path: putting bench/ on sys.path would let its modules shadow others."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'content.py')
    spec = importlib.util.spec_from_file_location('bench_content', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


content = _load_content()

REGION = 'us-east-1'


def _backend():
    return s3_backends[DEFAULT_ACCOUNT_ID]['global']


def handle(command: dict) -> dict:
    op = command.get('op')
    backend = _backend()
    if op == 'bucket':
        if command['bucket'] not in backend.buckets:
            backend.create_bucket(command['bucket'], REGION)
        return {'ok': True}
    if op == 'seed':
        count = 0
        for key, body in content.objects(command['kind'], command['start'], command['count'],
                                         command.get('batch', '')):
            backend.put_object(command['bucket'], key, body)
            count += 1
        return {'ok': True, 'count': count}
    if op == 'count':
        bucket = backend.get_bucket(command['bucket'])
        return {'ok': True, 'count': sum(1 for _ in bucket.keys.keys())}
    return {'ok': False, 'error': f'unknown op {op!r}'}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, required=True)
    args = parser.parse_args()
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    print(json.dumps({'ready': True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = handle(json.loads(line))
        except Exception as exc:  # report, keep serving: the harness decides what a failure means
            answer = {'ok': False, 'error': f'{type(exc).__name__}: {exc}'}
        print(json.dumps(answer), flush=True)
    server.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
