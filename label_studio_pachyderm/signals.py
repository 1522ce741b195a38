"""Annotation receivers for Pachyderm target storages.

Neither receiver may fail or block the annotation operation: a Pachyderm
problem is logged and recorded on the storage, and the next sync repairs it.
"""
from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver
from tasks.models import Annotation

logger = logging.getLogger(__name__)


@receiver(post_save, sender=Annotation)
def export_annotation_to_pachyderm(sender, instance, **kwargs):
    from .jobs import export_on_submit
    from .models import PachydermExportStorage

    try:
        storages = list(PachydermExportStorage.objects.filter(project_id=instance.project_id))
    except Exception:
        logger.exception('Pachyderm auto-export: cannot read target storages')
        return
    for storage in storages:
        # After the save commits, so the exported file shows what the database holds.
        transaction.on_commit(lambda s=storage, pk=instance.pk: export_on_submit(s, pk))


@receiver(pre_delete, sender=Annotation)
def delete_annotation_from_pachyderm(sender, instance, **kwargs):
    from .models import PachydermExportStorageLink

    try:
        plans = [
            (link.storage_id, instance.task_id, link.path or str(instance.id))
            for link in PachydermExportStorageLink.objects.filter(
                annotation_id=instance.id, storage__can_delete_objects=True
            )
        ]
    except Exception:
        logger.exception('Pachyderm delete: cannot read export links of annotation %s', instance.id)
        return
    if plans:
        # Runs once the deletion has committed: the task file can then be rewritten
        # without this annotation, or removed when none is left.
        transaction.on_commit(lambda: _apply_deletions(plans))


def _apply_deletions(plans) -> None:
    from .exporter import apply_deletion
    from .jobs import note_export_error
    from .models import PachydermExportStorage

    for storage_id, task_id, path in plans:
        storage = PachydermExportStorage.objects.filter(id=storage_id).first()
        if storage is None:  # the project (and its storages) went away: leave the repo as it is
            continue
        try:
            apply_deletion(storage, task_id, path)
        except Exception as exc:
            logger.warning('Pachyderm storage %s could not remove %s: %s', storage_id, path, exc)
            note_export_error(storage, exc, f'removing {path}')
