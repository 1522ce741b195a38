"""An import sync as a job: claimed, then run inline or queued (see ``jobs``), as the storage's only sync."""
from __future__ import annotations

from .. import jobs


def import_sync_job(storage_class, storage_id, full_rescan=False):
    jobs.run_exclusive(storage_class, storage_id, _import_sync, full_rescan)


def _import_sync(storage, full_rescan=False):
    storage.scan_and_create_links(full_rescan=full_rescan)


def run_import_sync(storage, full_rescan=False) -> bool:
    """Claim and run (or queue) an import sync; False when another one was already queued or running."""
    if jobs.claim_sync(storage):
        jobs.run(import_sync_job, storage, full_rescan)
        return True
    return False
