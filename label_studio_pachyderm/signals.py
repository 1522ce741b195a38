"""Annotation receivers for Pachyderm target storages: record each change in the outbox.

The row is written in the same transaction as the annotation change (see
``outbox``), inside a savepoint so that a problem with it can never fail or
roll back the annotation operation; the write to Pachyderm happens after the
transaction commits, and never raises into Label Studio either.
"""
from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver
from tasks.models import Annotation

logger = logging.getLogger(__name__)


def _record(annotation, deleted: bool) -> None:
    from . import outbox
    from .jobs import export_pending

    try:
        storage_ids = outbox.targets_of(annotation, deleted=deleted)
        if storage_ids:
            with transaction.atomic():
                outbox.record_change(annotation, storage_ids, deleted=deleted)
    except Exception:
        logger.exception('Pachyderm export: cannot record the change of annotation %s', annotation.id)
        return
    if storage_ids:
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
    from . import outbox

    outbox.pending_for_id(instance.id).delete()
