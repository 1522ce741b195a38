"""Annotation receivers for Pachyderm target storages: record each change in the outbox.

A change is never saved without its outbox row (see ``outbox``):

* The row is written in the transaction of the change when there is one (a delete
  always has one: Django's deletion runs in a transaction, and ``pre_delete`` is
  part of it). A failed insert is tried again a few times (SQLite's "database is
  locked" passes in moments); if it still fails, the error propagates and the
  change rolls back with it: the request fails, and Label Studio's own retry (or
  the user) does it again.
* A save outside any transaction (Label Studio creates and updates annotations in
  autocommit) is already committed when ``post_save`` runs, so failing it would
  only hide it. There, after the same tries, the error is logged and the outbox
  sweep's reconcile (``sweeper``) records the row later: the annotation is newer
  than its export link, which is all it looks for.

The write to Pachyderm happens after the transaction commits and never raises
into Label Studio.
"""
from __future__ import annotations

import logging
import time

from django.db import DatabaseError, connection, transaction
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver
from tasks.models import Annotation

logger = logging.getLogger(__name__)

_TRIES = 5  # inserts tried at most, 50 ms apart, doubling: about 1.5 s in all


def _insert_with_retries(annotation, storage_ids, deleted: bool) -> None:
    from .exports import outbox

    delay = 0.05
    for attempt in range(_TRIES):
        try:
            with transaction.atomic():  # a savepoint inside a transaction: a failed try leaves it usable
                outbox.record_change(annotation, storage_ids, deleted=deleted)
            return
        except DatabaseError:
            if attempt == _TRIES - 1:
                raise
            time.sleep(delay)
            delay *= 2


def _record(annotation, deleted: bool) -> None:
    from .exports import outbox
    from .exports.jobs import export_pending

    try:
        storage_ids = outbox.targets_of(annotation, deleted=deleted)
        if not storage_ids:
            return
        _insert_with_retries(annotation, storage_ids, deleted)
    except DatabaseError:
        if connection.in_atomic_block:
            logger.warning('Pachyderm export: cannot record the change of annotation %s; the change is refused '
                           'with it', annotation.id)
            raise
        logger.exception('Pachyderm export: cannot record the change of annotation %s (already saved); the '
                         'outbox sweep records it within a few minutes', annotation.id)
        return
    transaction.on_commit(lambda: export_pending(storage_ids))


@receiver(post_save, sender=Annotation)
def export_annotation_to_pachyderm(sender, instance, **kwargs):
    _record(instance, deleted=False)


@receiver(pre_delete, sender=Annotation)
def delete_annotation_from_pachyderm(sender, instance, **kwargs):
    # Before the delete: the row is part of the deleting transaction, and the writer later
    # rewrites the task file without this annotation, or removes the file.
    _record(instance, deleted=True)


@receiver(post_delete, sender='io_storages_pachyderm.PachydermExportStorage')
def forget_outbox_of_deleted_storage(sender, instance, **kwargs):
    from .exports import outbox

    outbox.pending_for_id(instance.id).delete()
