from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('io_storages_pachyderm', '0003_import_storage_watch_commits'),
    ]

    operations = [
        migrations.AddField(
            model_name='pachydermimportstorage',
            name='changed_files',
            field=models.CharField(
                choices=[('keep', 'keep'), ('new_version', 'new_version')], default='keep', max_length=16,
                help_text='A file changed since the last sync: keep its task (keep) or make a new task pinned to '
                          'the new commit (new_version)',
                verbose_name='changed files'),
        ),
        migrations.AddField(
            model_name='pachydermexportstorage',
            name='export_formats',
            field=models.JSONField(
                blank=True, default=list,
                help_text='Label Studio export formats (e.g. COCO, YOLO) also written under <prefix>/formats/<FORMAT>/',
                verbose_name='export formats'),
        ),
    ]
