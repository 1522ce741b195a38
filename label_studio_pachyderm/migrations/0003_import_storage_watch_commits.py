from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('io_storages_pachyderm', '0002_outbox_leases_one_link_per_file'),
    ]

    operations = [
        migrations.AddField(
            model_name='pachydermimportstorage',
            name='watch_commits',
            field=models.BooleanField(
                default=False,
                help_text='Sync automatically when a new commit finishes on the branch (not with a pinned commit)',
                verbose_name='watch commits'),
        ),
    ]
