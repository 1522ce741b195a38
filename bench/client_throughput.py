"""Throughput of the pachd client layer against the local PFS server over loopback gRPC.

Writes N files of SIZE bytes in ONE commit (write_commit), then reads every file
back (read_file, streamed), and prints MB/s both ways. Not a test: a number to
watch when changing the client's chunking, queueing or streaming.

    python bench/client_throughput.py [--files 1000] [--size-kib 100] [--address grpc://host:port]

Without --address it starts a local server on an ephemeral port in a temporary
data directory (removed afterwards).
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from label_studio_pachyderm import pachd  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--files', type=int, default=1000)
    parser.add_argument('--size-kib', type=int, default=100)
    parser.add_argument('--address', help='an existing pachd (default: start a local server)')
    parser.add_argument('--token', default=os.environ.get('PACHYDERM_AUTH_TOKEN'))
    parser.add_argument('--project', default='default')
    args = parser.parse_args()

    server = data_dir = None
    address = args.address
    if not address:
        from label_studio_pachyderm.localpfs import start_server

        data_dir = tempfile.mkdtemp(prefix='lsp-bench-')
        server = start_server('127.0.0.1', 0, data_dir, None)
        address = server.address
    try:
        client = pachd.PachdClient(address, args.token, timeout=30)
        repo = f'bench{int(time.time())}'
        client.create_repo(args.project, repo, exist_ok=True)
        size = args.size_kib * 1024
        # Distinct content per file, so a content-addressed store cannot deduplicate it away.
        block = os.urandom(size)
        total = args.files * size

        def ops():
            for i in range(args.files):
                prefix = i.to_bytes(8, 'big')
                yield pachd.FileOp.put(f'data/{i:05d}.bin', prefix + block[8:])

        started = time.perf_counter()
        commit = client.write_commit(args.project, repo, 'master', ops(), description='throughput benchmark')
        write_seconds = time.perf_counter() - started

        started = time.perf_counter()
        read = 0
        count = 0
        for entry in client.list_files(args.project, repo, commit, 'data'):
            with client.read_file(args.project, repo, commit, entry.path) as stream:
                for chunk in stream.iter_chunks():
                    read += len(chunk)
            count += 1
        read_seconds = time.perf_counter() - started
        assert count == args.files and read == total, (count, read)

        commits = sum(1 for _ in client.list_commits(args.project, repo))
        mb = total / 1e6
        print(f'pachd client throughput against {"local PFS server" if server else address}')
        print(f'  {args.files} files x {args.size_kib} KiB = {mb:.1f} MB, {commits} commit(s)')
        print(f'  write (one commit): {write_seconds:6.2f} s  {mb / write_seconds:8.1f} MB/s  '
              f'{args.files / write_seconds:8.0f} files/s')
        print(f'  read (file by file): {read_seconds:6.2f} s  {mb / read_seconds:8.1f} MB/s  '
              f'{args.files / read_seconds:8.0f} files/s')
        client.close()
    finally:
        if server:
            server.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
