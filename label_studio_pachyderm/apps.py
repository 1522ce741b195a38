from django.apps import AppConfig


class PachydermStorageConfig(AppConfig):
    """The plugin app.

    The label must contain ``io_storages_``: Label Studio finds a task's storage
    link by matching related names against ``.*io_storages_``.
    """

    name = 'label_studio_pachyderm'
    label = 'io_storages_pachyderm'
    verbose_name = 'Pachyderm storage'
    default_auto_field = 'django.db.models.AutoField'

    def ready(self):
        # Annotation save/delete receivers for target storages.
        from . import labeling, signals  # noqa: F401
        from .imports.datamanager import register

        register()
        # The labeling queue serves current task versions only.
        labeling.register()
