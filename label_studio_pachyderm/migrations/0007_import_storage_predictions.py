from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('io_storages_pachyderm', '0006_export_storage_promote_to'),
    ]

    operations = [
        migrations.AddField(
            model_name='pachydermimportstorage',
            name='predictions_repo',
            field=models.TextField(
                blank=True, default='', verbose_name='predictions repo',
                help_text="A pipeline's output repo whose files are predictions of the tasks' files; empty: no "
                          'predictions'),
        ),
        migrations.AddField(
            model_name='pachydermimportstorage',
            name='predictions_branch',
            field=models.TextField(
                blank=True, default='master', verbose_name='predictions branch',
                help_text='Branch of the predictions repo (read at its head with predictions_match=branch_head)'),
        ),
        migrations.AddField(
            model_name='pachydermimportstorage',
            name='predictions_path',
            field=models.TextField(
                blank=True, default='{dir}/{stem}.json', verbose_name='predictions path',
                help_text='Path of the prediction file of a task file: {dir}, {stem}, {ext}, {path} (cats/1.jpg: '
                          'dir cats, stem 1, ext jpg)'),
        ),
        migrations.AddField(
            model_name='pachydermimportstorage',
            name='predictions_match',
            field=models.CharField(
                max_length=16, default='commit_set', verbose_name='predictions match',
                choices=[('commit_set', 'The output commit of the task commit set'),
                         ('branch_head', 'The branch head')],
                help_text="commit_set: a task pinned to commit C reads <predictions_repo>@C (a pipeline's output "
                          'of those bytes); branch_head: the head of predictions_branch'),
        ),
    ]
