"""Training-ready formats (COCO, YOLO, VOC, CSV, ...) written by a target storage next to its JSON.

A target storage's ``export_formats`` lists Label Studio export format names. When a commit
carries the formats (every manual sync; an auto-export at most once per
``PACHYDERM_FORMATS_REFRESH_SECONDS``), each format's folder ``<prefix>/formats/<FORMAT>/`` is
replaced, in that same commit, by what Label Studio's own converter
(``label_studio_sdk.converter.Converter``, as LS's Export dialog runs it) produces for every
annotated task of the project. So the folder always equals the converter's output: a YOLO
label of a task whose annotations were all deleted disappears with the next refresh.

Media is never copied. Formats that copy images (``*_WITH_IMAGES``) are not offered. With
downloads off, the converter names each image by a local placeholder path
(``images/<8 hex>__<file name>``, the name LS's own export gives it). That placeholder is
mapped back to the task's URI (``pfs://...``): COCO's ``images[].file_name`` is rewritten to
the URI; formats whose files are named after the images (YOLO's ``labels/<name>.txt``, VOC's
``Annotations/<name>.xml``) get an ``images.json`` beside them mapping each placeholder to
its URI.

Conversion happens before the commit is started, from a temporary directory: the tasks are
serialised (LS's export serializer, 200 at a time) into one JSON array on disk, which the
converter reads as a stream (ijson); its output files are streamed into the commit. A format
whose conversion fails is left out of the commit (its previous folder stays as it was) and
reported as ``format <NAME>: <reason>``; the JSON files and the other formats still land.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from typing import Iterable, Iterator

from django.conf import settings
from django.utils import timezone

from .. import pachd

logger = logging.getLogger(__name__)

FOLDER = 'formats'
MANIFEST = 'images.json'
_READ_CHUNK = 1024 * 1024
_CHUNK = 200  # tasks serialised together
# Formats whose output names files after the images: they get the placeholder -> URI manifest.
_NAMED_AFTER_IMAGES = ('YOLO', 'YOLO_OBB', 'VOC')
_COCO_LIKE = ('COCO',)


class FormatProblem(str):
    """A format left out of a commit (``format NAME: reason``); the annotations of that commit still landed."""


def refresh_seconds() -> float:
    return float(settings.PACHYDERM_FORMATS_REFRESH_SECONDS)


def copies_media(name: str) -> bool:
    return name.endswith('_WITH_IMAGES')


def available(project) -> list:
    """The format names a storage of ``project`` may list: those LS's Export dialog enables, without media copies.

    The same function as LS's ``/api/projects/<id>/export/formats`` (``DataExport.get_export_formats``),
    so the list follows the project's labeling config.
    """
    from data_export.models import DataExport

    return [f['name'] for f in DataExport.get_export_formats(project)
            if not f.get('disabled') and not copies_media(f['name'])]


def problem(value, project):
    """Why ``value`` is not a valid ``export_formats`` for ``project`` (a message), or None."""
    names = available(project) if project is not None else []
    offer = f"Available for this project's labeling config: {', '.join(names) or 'none'}"
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return f'Expected a list of format names, e.g. ["COCO", "YOLO"]. {offer}'
    duplicates = sorted({item for item in value if value.count(item) > 1})
    if duplicates:
        return f'Each format may be listed once; repeated: {", ".join(duplicates)}. {offer}'
    unknown = [item for item in value if item not in names]
    if unknown:
        media = [item for item in unknown if copies_media(item)]
        why = ' (formats that copy the images are not written to Pachyderm: the images stay where they are)' \
            if media else ''
        return f'Not available: {", ".join(unknown)}{why}. {offer}'
    return None


def folder(storage, name: str) -> str:
    prefix = storage.clean_prefix
    return f'{prefix}/{FOLDER}/{name}' if prefix else f'{FOLDER}/{name}'


def due(storage) -> bool:
    """Whether an auto-export commit of ``storage`` should carry the formats now (fresh from the database)."""
    row = type(storage).objects.filter(id=storage.id).values('export_formats', 'formats_exported_at').first()
    if not row or not row['export_formats']:
        return False
    last = row['formats_exported_at']
    return last is None or (timezone.now() - last).total_seconds() >= refresh_seconds()


def mark_written(storage, at) -> None:
    type(storage).objects.filter(id=storage.id).update(formats_exported_at=at)
    storage.formats_exported_at = at


class Conversion:
    """The converter's output for ``names``, in a temporary directory, as file operations.

    ``convert()`` fills the directory (``written`` and ``errors`` are known afterwards);
    ``close()`` removes it. Also a context manager doing both.
    """

    def __init__(self, storage, names: Iterable[str]):
        self.storage = storage
        self.project = storage.project
        self.names = list(dict.fromkeys(names))
        self.written: list = []  # format names converted
        self.errors: list = []  # FormatProblem('format NAME: reason')
        self.started_at = None
        self.tasks = 0
        self._dir = None

    def convert(self) -> 'Conversion':
        self.started_at = timezone.now()
        self._dir = tempfile.mkdtemp(prefix='lsp-formats-')
        try:
            self._convert_all()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> 'Conversion':
        return self.convert()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- conversion
    def _convert_all(self) -> None:
        from label_studio_sdk.converter import Converter

        offered = set(available(self.project))
        config = self.project.get_parsed_config()

        def converter():  # one per format, as LS's export makes one per conversion (it keeps state)
            return Converter(config=config, project_dir=None,
                             upload_dir=os.path.join(settings.MEDIA_ROOT, settings.UPLOAD_DIR),
                             download_resources=False, access_token=None, hostname=None)

        # The converter reads its media from this data key (the first object tag), as for LS's export.
        keys = list(getattr(converter(), '_data_keys', None) or [])
        data_key = keys[0] if keys else None
        input_path = os.path.join(self._dir, 'tasks.json')
        uris = self._write_tasks(input_path, data_key)
        mapping = None
        for name in self.names:
            if name not in offered:
                self.errors.append(FormatProblem(
                    f'format {name}: not available for this project\'s labeling config '
                    f'(available: {", ".join(sorted(offered)) or "none"})'))
                continue
            out = os.path.join(self._dir, 'out', name)
            try:
                os.makedirs(out)
                converter().convert(input_path, out, name, is_dir=False)
                if mapping is None:  # the same for every format: each output folder is at the same depth
                    mapping = _placeholders(out, uris)
                self._reference_media(name, out, mapping)
            except Exception as exc:
                logger.warning('Pachyderm storage %s: format %s not converted: %s', self.storage.id, name, exc)
                self.errors.append(FormatProblem(
                    f'format {name}: the converter failed ({type(exc).__name__}: {exc})'))
                shutil.rmtree(out, ignore_errors=True)
                continue
            self.written.append(name)

    def _write_tasks(self, path: str, data_key) -> list:
        """Every annotated task as LS's export serializer gives it, as one JSON array; returns the media URIs."""
        from tasks.models import Annotation

        from .task_json import fetch_tasks, task_serialiser

        serialiser = task_serialiser()
        ids = list(Annotation.objects.filter(project=self.project).values_list('task_id', flat=True)
                   .distinct().order_by('task_id'))
        options = dict(expand=['drafts'], context={
            'project': self.project,
            'interpolate_key_frames': getattr(settings, 'INTERPOLATE_KEY_FRAMES', False)})
        uris = []
        with open(path, 'w', encoding='utf-8') as out:
            out.write('[')
            first = True
            for start in range(0, len(ids), _CHUNK):
                tasks = fetch_tasks(self.project, ids[start:start + _CHUNK])
                for task, row in zip(tasks, serialiser(tasks, many=True, **options).data):
                    # dumps, not dump: json.dump encodes in pure Python, dumps in C (4x faster here).
                    out.write(('' if first else ',\n') + json.dumps(row, ensure_ascii=False))
                    first = False
                    value = (row.get('data') or {}).get(data_key) if data_key else None
                    for uri in (value if isinstance(value, list) else [value]):
                        if isinstance(uri, str) and uri:
                            uris.append((task.id, uri))
            out.write(']')
        self.tasks = len(ids)
        return uris

    def _reference_media(self, name: str, out: str, mapping: dict) -> None:
        """Replace the converter's placeholder image paths by the tasks' URIs (see the module docstring)."""
        if name in _COCO_LIKE:
            result = os.path.join(out, 'result.json')
            if os.path.exists(result):
                with open(result, encoding='utf-8') as f:
                    text = f.read()
                # Only the file_name string literals change, so every other byte stays the converter's
                # (and a 10,000-image file is not decoded and re-encoded in pure Python, indent=2).
                text = _COCO_FILE_NAME.sub(lambda m: m.group(1) + _json_string(mapping, m.group(2)), text)
                with open(result, 'w', encoding='utf-8') as f:
                    f.write(text)
        elif name in _NAMED_AFTER_IMAGES and mapping:
            with open(os.path.join(out, MANIFEST), 'w', encoding='utf-8') as f:
                json.dump(dict(sorted(mapping.items())), f, indent=2, ensure_ascii=False)

    # -- file operations
    def ops(self) -> Iterator[pachd.FileOp]:
        """For each converted format: remove its folder, then put every output file (same commit)."""
        for name in self.written:
            target = folder(self.storage, name)
            yield pachd.FileOp.remove(target + '/')
            root = os.path.join(self._dir, 'out', name)
            for directory, subdirs, files in os.walk(root):
                subdirs.sort()
                for file_name in sorted(files):
                    local = os.path.join(directory, file_name)
                    relative = os.path.relpath(local, root).replace(os.sep, '/')
                    yield pachd.FileOp.put(f'{target}/{relative}', _read(local))

    def files(self) -> dict:
        """{format name: [paths relative to its folder]} of what ``ops`` writes (for tests and the bench)."""
        listing = {}
        for name in self.written:
            root = os.path.join(self._dir, 'out', name)
            listing[name] = sorted(os.path.relpath(os.path.join(d, f), root).replace(os.sep, '/')
                                   for d, _, fs in os.walk(root) for f in fs)
        return listing


def _placeholders(out: str, uris: list) -> dict:
    """{placeholder path relative to ``out``: task URI}, computed by LS's own ``get_local_path``.

    It is the function the converter calls for each image; with downloads off it only names
    the cache file, so the same call gives the same name without touching the network.
    """
    from label_studio_sdk._extensions.label_studio_tools.core.utils.io import get_local_path

    images = os.path.join(out, 'images')
    mapping = {}
    for task_id, uri in uris:
        try:
            local = get_local_path(url=uri, cache_dir=images, project_dir=None, hostname=None,
                                   image_dir=os.path.join(settings.MEDIA_ROOT, settings.UPLOAD_DIR),
                                   access_token=None, download_resources=False, task_id=task_id)
        except Exception:
            continue  # the converter kept the URI itself for this one
        mapping[os.path.relpath(local, out).replace(os.sep, '/')] = uri
    return mapping


# `"file_name": "<JSON string>"` as the converter's json.dump writes it in COCO's images.
_COCO_FILE_NAME = re.compile(r'("file_name": )("(?:[^"\\]|\\.)*")')


def _json_string(mapping: dict, literal: str) -> str:
    value = json.loads(literal)
    return json.dumps(mapping[value]) if value in mapping else literal


def _read(path: str) -> Iterator[bytes]:
    with open(path, 'rb') as f:
        while True:
            chunk = f.read(_READ_CHUNK)
            if not chunk:
                return
            yield chunk
