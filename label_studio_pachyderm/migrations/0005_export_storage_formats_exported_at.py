from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('io_storages_pachyderm', '0004_changed_files_export_formats'),
    ]

    operations = [
        migrations.AddField(
            model_name='pachydermexportstorage',
            name='formats_exported_at',
            field=models.DateTimeField(
                blank=True, null=True, help_text='When the export formats were last written (the data as of that time)',
                verbose_name='formats exported at'),
        ),
    ]
