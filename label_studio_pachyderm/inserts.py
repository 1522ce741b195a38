"""Many new rows of one model in a few INSERT statements, with their ids: how syncs write tasks and links.

Django's ``bulk_create`` prepares every value of every row through its field, and builds the SQL
of each one: 19 fields of a Task make 38,000 such steps for 2,000 tasks, about half of a media
import's time. Most of a sync's columns hold one value for the whole batch (the project, the
overlap, the counters, the creation time), so here those are prepared once; the few that differ
per row (data, meta, inner_id) go through the same field methods one by one. The statement is
the one ``bulk_create`` sends, made by the backend's own operations (``insert_statement``,
``bulk_insert_sql``, ``return_insert_columns``) in batches of ``bulk_batch_size``. Like
``bulk_create`` it sends no signals. Where the backend cannot return the ids of a multi-row
INSERT, or a field has a placeholder of its own, it simply is ``bulk_create``.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

from django.db import connections, models, router
from django.utils import timezone


def insert(model, shared: Dict[str, object], rows: Sequence[Dict[str, object]]) -> List[int]:
    """Insert one row per item of ``rows``, each with the values of ``shared`` as well; the new ids, in order.

    Keys are field names (or a foreign key's attname, ``project_id``). Every row names the same fields;
    a field named nowhere gets its default, or the current time for ``auto_now``/``auto_now_add``
    (a value given for one of those is kept, unlike ``bulk_create``, which stamps the time of the INSERT).
    """
    if not rows:
        return []
    connection = connections[router.db_for_write(model)]
    opts = model._meta
    fields = [f for f in opts.concrete_fields if f is not opts.pk and not getattr(f, 'generated', False)]
    by_name = {**{f.name: f for f in fields}, **{f.attname: f for f in fields}}
    unknown = (set(shared) | set(rows[0])) - set(by_name)
    if unknown:
        raise ValueError(f'{model.__name__} has no field {sorted(unknown)}')
    if (not connection.features.can_return_rows_from_bulk_insert
            or any(hasattr(f, 'get_placeholder') for f in fields)):
        objs = model.objects.bulk_create([model(**shared, **row) for row in rows])
        if any(obj.pk is None for obj in objs):  # e.g. MySQL: bulk_create cannot tell the new ids
            raise RuntimeError(f'{connection.vendor} does not return the ids of inserted {model.__name__} rows')
        return [obj.pk for obj in objs]

    # Per column: the rows' key for it, or (None and) the value every row shares, prepared once.
    per_row = {by_name[name]: name for name in rows[0]}  # field -> the rows' key for it
    now = timezone.now()
    named = {by_name[name]: value for name, value in shared.items()}
    columns = []
    for field in fields:
        if field in per_row:
            columns.append((field, per_row[field], None))
            continue
        if field in named:
            value = named[field]
        elif getattr(field, 'auto_now', False) or getattr(field, 'auto_now_add', False):
            value = now
        else:
            value = field.get_default()
        if isinstance(value, models.Model):
            value = value.pk
        columns.append((field, None, field.get_db_prep_save(value, connection)))

    quote = connection.ops.quote_name
    head = (f'{connection.ops.insert_statement()} {quote(opts.db_table)} '
            f'({", ".join(quote(f.column) for f in fields)})')
    returning, returning_params = connection.ops.return_insert_columns([opts.pk])
    batch_size = max(1, connection.ops.bulk_batch_size(fields, rows))
    ids: List[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            params = []
            for row in batch:
                for field, key, prepared in columns:
                    params.append(prepared if key is None else field.get_db_prep_save(row[key], connection))
            placeholders = [['%s'] * len(fields)] * len(batch)
            sql = f'{head} {connection.ops.bulk_insert_sql(fields, placeholders)} {returning}'
            cursor.execute(sql, (*params, *returning_params))
            ids.extend(row[0] for row in connection.ops.fetch_returned_insert_rows(cursor))
    if len(ids) != len(rows):  # never expected: the caller's links would point at the wrong tasks
        raise RuntimeError(f'{len(rows)} {model.__name__} rows inserted, {len(ids)} ids returned')
    return ids
