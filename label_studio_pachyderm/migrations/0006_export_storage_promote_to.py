from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('io_storages_pachyderm', '0005_export_storage_formats_exported_at'),
    ]

    operations = [
        migrations.AddField(
            model_name='pachydermexportstorage',
            name='promote_to',
            field=models.TextField(
                blank=True, default='', verbose_name='promote to',
                help_text='Branch that pipelines read (e.g. master); a promote moves it to a labeling round of the '
                          'working branch (branch). Empty: no rounds'),
        ),
    ]
