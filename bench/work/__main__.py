"""Entry of a measured process: set up Django, run one job, print its result line."""
import json
import sys
import traceback

from .common import emit, setup_django


def _migrate(p: dict) -> None:
    """Build the template database every scenario starts from (a copy of it)."""
    from django.core.management import call_command

    call_command('migrate', interactive=False, verbosity=0)
    emit(dict(seconds=0, items=0))


def _jobs():
    from . import checks, exports, imports, predictions, streaming

    return {
        'migrate': _migrate,
        'full_sync': imports.full_sync,
        's3_prestate': imports.s3_prestate,
        'resync': imports.resync,
        'export_prepare': exports.prepare,
        'export_sync': exports.export_sync,
        'per_commit': exports.per_commit,
        'raw_read': streaming.raw_read,
        'proxy': streaming.proxy,
        'storage_checks': checks.storage_checks,
        'predictions_prepare': predictions.prepare,
        'predictions_attach': predictions.attach,
        'predictions_import_ls': predictions.import_ls,
    }


def main() -> int:
    job, params = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    try:
        setup_django()
        run = _jobs()[job]
        if params.get('profile'):
            from .profiling import profiled

            profiled(run, params)
        else:
            run(params)
    except Exception as exc:
        traceback.print_exc()
        emit(dict(error=f'{type(exc).__name__}: {exc}'))
        return 1
    finally:
        # Close the database cleanly, so the file the next scenario copies is complete.
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
