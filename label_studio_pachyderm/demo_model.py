"""The demo's model: a colour-threshold box finder for the demo's images, run the way a pipeline runs.

    python -m label_studio_pachyderm.demo_model follow ADDRESS
        plays the pipeline against a pachd (the demo's local PFS server): follows detections@master,
        and for each of its open commits reads the images commit named in that commit's direct
        provenance, writes one prediction per image into the open commit and finishes it.
    python -m label_studio_pachyderm.demo_model pfs /pfs/images /pfs/out
        what a real Pachyderm pipeline's transform runs: reads the input directory, writes the
        prediction files into the output directory (docs/user-guide.md, "A worked example").

A prediction file sits where a source storage's default ``predictions_path`` looks for it
(``{dir}/{stem}.json``: ``red-square.png`` -> ``red-square.json``) and holds one Label Studio
prediction: ``{"result": [rectanglelabels items], "score": ..., "model_version": ...}``, with
the names and labels of the demo project's labeling config (``demo.LABEL_CONFIG``).

The "model" has no ML in it: it decodes the PNG (zlib, in pure Python), takes the colour of the
image's corners as background, and puts one box around the pixels nearest to each label's
colour. It is there so that the demo shows predictions computed from exactly the bytes a task
shows, with no dependency beyond the plugin's own. A file it cannot read (not a PNG, a PNG
kind it does not decode, truncated) is skipped with a log line; it never stops the run.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import struct
import sys
import threading
import zlib
from dataclasses import dataclass
from typing import Optional

from . import pachd
from .demo import LABEL_COLOURS, MODEL_VERSION
from .imports.predictions import DEFAULT_TEMPLATE, prediction_path

logger = logging.getLogger('label_studio_pachyderm.demo_model')

FROM_NAME, TO_NAME = 'label', 'image'  # the RectangleLabels and Image tags of demo.LABEL_CONFIG
INPUT_REPO, OUTPUT_REPO, BRANCH, PROJECT = 'images', 'detections', 'master', 'default'

BACKGROUND_DISTANCE = 48  # a pixel this close to the background colour (sum of channel differences) is background
LABEL_DISTANCE = 120  # a pixel counts for the nearest label's colour only when it is this close to it
MIN_PIXELS = 16  # fewer pixels of a colour than this are noise, not an object
MAX_PIXELS = 50_000_000  # larger images are refused unread (the decoded rows are held in memory)


class UnreadableImage(ValueError):
    """The file is not an image this model decodes; the message says why."""


# ----------------------------------------------------------------------------- PNG decoding
_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}  # the bit depths PNG allows


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    rows: list  # one bytes object per row: R, G, B for each pixel


def decode_png(data: bytes) -> Image:
    """The pixels of a non-interlaced PNG of any kind PNG allows (grey, RGB, palette, with or without alpha,
    1 to 16 bits per sample; alpha is dropped), every filter type undone; UnreadableImage for anything else."""
    if not data.startswith(_SIGNATURE):
        raise UnreadableImage('not a PNG (no PNG signature)')
    header, palette, compressed = None, None, []
    offset = len(_SIGNATURE)
    while offset + 12 <= len(data):
        length, kind = struct.unpack('>I4s', data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        if len(body) < length or offset + 12 + length > len(data):
            raise UnreadableImage(f'truncated {kind.decode(errors="replace")} chunk')
        (crc,) = struct.unpack('>I', data[offset + 8 + length:offset + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise UnreadableImage(f'bad checksum in the {kind.decode(errors="replace")} chunk')
        offset += 12 + length
        if kind == b'IHDR':
            header = struct.unpack('>IIBBBBB', body) if length == 13 else None
        elif kind == b'PLTE':
            palette = body
        elif kind == b'IDAT':
            compressed.append(body)
        elif kind == b'IEND':
            break
    if header is None:
        raise UnreadableImage('no valid IHDR chunk')
    width, height, depth, colour, _, _, interlace = header
    if colour not in _CHANNELS or depth not in _DEPTHS.get(colour, ()):
        raise UnreadableImage(f'colour type {colour} at {depth} bits per sample is not decoded here')
    if interlace:
        raise UnreadableImage('interlaced PNGs are not decoded here')
    if not width or not height or width * height > MAX_PIXELS:
        raise UnreadableImage(f'{width} x {height} pixels: empty or too large')
    if colour == 3 and not palette:
        raise UnreadableImage('a palette image without a PLTE chunk')
    if not compressed:
        raise UnreadableImage('no image data (IDAT)')
    pixel_bytes = max(1, _CHANNELS[colour] * depth // 8)  # filters work on whole bytes, at least one
    stride = (width * _CHANNELS[colour] * depth + 7) // 8
    expected = height * (stride + 1)
    try:
        # max_length: a deflate stream that inflates far beyond the image's size is not read to its end
        raw = zlib.decompressobj().decompress(b''.join(compressed), expected)
    except zlib.error as exc:
        raise UnreadableImage(f'corrupt image data: {exc}') from None
    if len(raw) < expected:
        raise UnreadableImage(f'image data ends early ({len(raw)} of {expected} bytes)')
    rows, previous = [], bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        row = _unfilter(raw[start], raw[start + 1:start + 1 + stride], previous, pixel_bytes)
        rows.append(_to_rgb(row, width, colour, depth, palette))
        previous = row
    return Image(width, height, rows)


def _unfilter(kind: int, line: bytes, previous: bytes, bpp: int) -> bytes:
    """One scanline with its PNG filter (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) undone."""
    if kind == 0:
        return line
    if kind == 2:
        return bytes((a + b) & 0xFF for a, b in zip(line, previous))
    if kind not in (1, 3, 4):
        raise UnreadableImage(f'unknown filter type {kind}')
    out = bytearray(line)
    for i in range(len(out)):
        left = out[i - bpp] if i >= bpp else 0
        if kind == 1:
            out[i] = (out[i] + left) & 0xFF
        elif kind == 3:
            out[i] = (out[i] + ((left + previous[i]) >> 1)) & 0xFF
        else:
            up, up_left = previous[i], previous[i - bpp] if i >= bpp else 0
            estimate = left + up - up_left
            near_left, near_up, near_up_left = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
            if near_left <= near_up and near_left <= near_up_left:
                predictor = left
            elif near_up <= near_up_left:
                predictor = up
            else:
                predictor = up_left
            out[i] = (out[i] + predictor) & 0xFF
    return bytes(out)


def _to_rgb(row: bytes, width: int, colour: int, depth: int, palette: Optional[bytes]) -> bytes:
    """A decoded scanline as R, G, B bytes per pixel (16-bit samples by their high byte, alpha dropped)."""
    if depth == 16:
        row = row[::2]
    elif depth < 8:  # several pixels per byte, the first in the highest bits; grey scaled up to 0-255
        mask, per_byte = (1 << depth) - 1, 8 // depth
        samples = [(byte >> (8 - depth * (k + 1))) & mask for byte in row for k in range(per_byte)][:width]
        row = bytes(samples) if colour == 3 else bytes(value * 255 // mask for value in samples)
    if colour == 2:
        return row
    if colour == 6:
        return bytes(b for i, b in enumerate(row) if i % 4 != 3)
    if colour == 0:
        return bytes(b for b in row for _ in range(3))
    if colour == 4:
        return bytes(b for b in row[::2] for _ in range(3))
    out = bytearray()
    for index in row:  # colour type 3
        if 3 * index + 3 > len(palette):
            raise UnreadableImage(f'palette index {index} outside the palette')
        out += palette[3 * index:3 * index + 3]
    return bytes(out)


# ----------------------------------------------------------------------------- finding boxes
@dataclass(frozen=True)
class Box:
    label: str
    x0: int
    y0: int
    x1: int  # exclusive, like the box demo.png draws
    y1: int
    score: float  # how much of the box its colour fills


def _distance(a, b) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2])


def find_boxes(image: Image, labels=LABEL_COLOURS) -> list:
    """One Box per label whose colour covers at least MIN_PIXELS pixels: around every pixel nearest to that
    colour. The background is the colour most of the four corners have."""
    w, h, rows = image.width, image.height, image.rows
    corners = [tuple(rows[y][3 * x:3 * x + 3]) for y in (0, h - 1) for x in (0, w - 1)]
    background = max(corners, key=corners.count)
    plain = bytes(background) * w
    label_of = {}  # a pixel's colour -> its label (or None): images have few colours, each judged once
    found = {}  # label -> [x0, y0, x1, y1, pixels]
    for y, row in enumerate(rows):
        if row == plain:
            continue  # most rows of a picture with a few objects: skipped at C speed
        for x in range(w):
            pixel = row[3 * x:3 * x + 3]
            if pixel not in label_of:
                label_of[pixel] = _label_for(tuple(pixel), background, labels)
            label = label_of[pixel]
            if label is None:
                continue
            box = found.get(label)
            if box is None:
                found[label] = [x, y, x + 1, y + 1, 1]
            else:
                box[0], box[1] = min(box[0], x), min(box[1], y)
                box[2], box[3] = max(box[2], x + 1), max(box[3], y + 1)
                box[4] += 1
    boxes = [Box(label, x0, y0, x1, y1, round(pixels / ((x1 - x0) * (y1 - y0)), 3))
             for label, (x0, y0, x1, y1, pixels) in found.items() if pixels >= MIN_PIXELS]
    return sorted(boxes, key=lambda box: (box.y0, box.x0, box.label))


def _label_for(pixel: tuple, background: tuple, labels) -> Optional[str]:
    if _distance(pixel, background) <= BACKGROUND_DISTANCE:
        return None
    name, colour = min(labels, key=lambda item: _distance(pixel, item[1]))
    return name if _distance(pixel, colour) <= LABEL_DISTANCE else None


def prediction(image: Image, labels=LABEL_COLOURS) -> dict:
    """The Label Studio prediction of one image: its boxes as rectanglelabels in percent of the image."""
    boxes = find_boxes(image, labels)
    result = [{
        'id': f'box{number}', 'type': 'rectanglelabels', 'from_name': FROM_NAME, 'to_name': TO_NAME,
        'original_width': image.width, 'original_height': image.height, 'image_rotation': 0,
        'score': box.score,
        'value': {'x': 100 * box.x0 / image.width, 'y': 100 * box.y0 / image.height,
                  'width': 100 * (box.x1 - box.x0) / image.width, 'height': 100 * (box.y1 - box.y0) / image.height,
                  'rotation': 0, 'rectanglelabels': [box.label]},
    } for number, box in enumerate(boxes, 1)]
    score = round(sum(box.score for box in boxes) / len(boxes), 3) if boxes else None
    return {'result': result, 'score': score, 'model_version': MODEL_VERSION}


def predict_file(path: str, data: bytes) -> Optional[tuple]:
    """(prediction file path, its JSON bytes) for the image file ``path``; None, with a log line, when the
    file cannot be read as an image."""
    try:
        answer = prediction(decode_png(data))
    except Exception as exc:  # UnreadableImage, or a file odd enough to trip the decoder: one file, not the run
        logger.warning('demo model: skipping %s: %s', path, exc)
        return None
    return prediction_path(DEFAULT_TEMPLATE, path), json.dumps(answer, sort_keys=True).encode()


# ----------------------------------------------------------------------------- as a pipeline's transform
def run_on_directories(input_dir: str, output_dir: str) -> int:
    """Every file under ``input_dir`` (a pipeline's /pfs/<input>), its prediction under ``output_dir``
    (/pfs/out); the number of predictions written."""
    written = 0
    for folder, _, names in os.walk(input_dir, followlinks=True):  # pachd links datums' files in
        for name in sorted(names):
            full = os.path.join(folder, name)
            relative = os.path.relpath(full, input_dir).replace(os.sep, '/')
            try:
                with open(full, 'rb') as handle:
                    made = predict_file(relative, handle.read())
            except OSError as exc:
                logger.warning('demo model: skipping %s: %s', relative, exc)
                continue
            if made is None:
                continue
            target = os.path.join(output_dir, *made[0].split('/'))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, 'wb') as handle:
                handle.write(made[1])
            written += 1
    logger.info('demo model: %d predictions written to %s', written, output_dir)
    return written


# ----------------------------------------------------------------------------- playing the pipeline
class Follower:
    """Follows the output branch and does a pipeline's job for each of its open commits; see the module
    docstring. ``stop()`` from any thread (or a signal handler) ends ``run()`` after the commit at hand."""

    BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0

    def __init__(self, address: str, project: str = PROJECT, input_repo: str = INPUT_REPO,
                 output_repo: str = OUTPUT_REPO, branch: str = BRANCH):
        self.address = address
        self.project, self.input_repo, self.output_repo, self.branch = project, input_repo, output_repo, branch
        self._stopping = threading.Event()
        self._subscription = None

    def stop(self) -> None:
        self._stopping.set()
        subscription = self._subscription
        if subscription is not None:
            subscription.cancel()  # the blocked iteration ends (StopIteration)

    def run(self) -> None:
        delay = self.BACKOFF_FIRST
        while not self._stopping.is_set():
            client = pachd.PachdClient(self.address)
            try:
                # READY, as pachd's pipelines wait for it: open, and every commit it is computed from finished.
                # From the branch's first commit every time: an open commit missed while pachd was away, or
                # left open by a run that was stopped, comes again; finished ones are passed over.
                self._subscription = client.subscribe_commits(self.project, self.output_repo, self.branch,
                                                              state='READY')
                if self._stopping.is_set():
                    break
                logger.info('demo model: subscribing to the open commits of %s/%s@%s on %s', self.project,
                            self.output_repo, self.branch, self.address)
                for info in self._subscription:
                    delay = self.BACKOFF_FIRST  # pachd answers: the next failure starts the back-off over
                    if not info.finished:
                        self.finish(client, info.id)
                    if self._stopping.is_set():
                        break
                if not self._stopping.is_set():
                    raise pachd.PachdUnavailable(f'pachd at {self.address} ended the subscription')
            except pachd.PachdError as exc:
                if self._stopping.is_set():
                    break
                logger.warning('demo model: %s; trying again in %.0f s', exc, delay)
                self._stopping.wait(delay)
                delay = min(2 * delay, self.BACKOFF_MAX)
            finally:
                self._subscription = None
                client.close()
        logger.info('demo model: stopped')

    def finish(self, client, commit_id: str) -> None:
        """One open output commit: the predictions of its input commit written into it, then finished."""
        info = client.inspect_commit(self.project, self.output_repo, commit_id)
        if info.finished:
            return  # finished meanwhile (another model, a person with pachctl)
        inputs = [prov_id for prov_project, prov_repo, prov_id in info.provenance
                  if (prov_project, prov_repo) == (self.project, self.input_repo)]
        if not inputs:
            client.finish_open_commit(self.project, self.output_repo, commit_id, [],
                                      error=f'no {self.input_repo} commit in its provenance')
            logger.warning('demo model: %s@%s has no %s commit in its provenance; finished it as failed',
                           self.output_repo, commit_id, self.input_repo)
            return
        source = inputs[0]
        ops, written = [], set()
        try:
            # the whole input in one stream; a file too big for it (content None) is read on its own
            for path, data in client.read_files(self.project, self.input_repo, source, '**'):
                if data is None:
                    data = client.get_file_bytes(self.project, self.input_repo, source, path)
                made = predict_file(path, data)
                if made is not None:
                    ops.append(pachd.FileOp.put(*made))
                    written.add(made[0])
        except pachd.PachdNotFound as exc:
            if exc.kind != 'file':  # the input commit is gone (squashed, dropped): it will not come back
                client.finish_open_commit(self.project, self.output_repo, commit_id, [],
                                          error=f'cannot read its input: {exc}')
                logger.warning('demo model: %s@%s finished as failed: %s', self.output_repo, commit_id, exc)
                return
            # else the input commit holds no file: no prediction
        # The output is the model's answer for this input and nothing else: an output commit starts
        # with its parent's files, so predictions of images that are gone are deleted.
        ops += [pachd.FileOp.remove(entry.path) for entry in client.list_files(self.project, self.output_repo,
                                                                                commit_id)
                if entry.path not in written]
        client.finish_open_commit(self.project, self.output_repo, commit_id, ops,
                                  description=f'{len(written)} predictions by {MODEL_VERSION} from '
                                              f'{self.input_repo}@{source}')
        logger.info('demo model: %s@%s finished: %d predictions from %s@%s', self.output_repo, commit_id,
                    len(written), self.input_repo, source)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m label_studio_pachyderm.demo_model')
    commands = parser.add_subparsers(dest='command', required=True)
    follow = commands.add_parser('follow', help='play the detections pipeline against a pachd')
    follow.add_argument('address', help='pachd, e.g. grpc://localhost:30650')
    follow.add_argument('--input', default=INPUT_REPO, help='input repo (%(default)s)')
    follow.add_argument('--output', default=OUTPUT_REPO, help='output repo (%(default)s)')
    follow.add_argument('--branch', default=BRANCH, help="the output repo's branch (%(default)s)")
    directories = commands.add_parser('pfs', help="a pipeline's transform: input directory to output directory")
    directories.add_argument('input_dir')
    directories.add_argument('output_dir')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s', stream=sys.stderr)
    if args.command == 'pfs':
        run_on_directories(args.input_dir, args.output_dir)
        return 0
    try:
        pachd.parse_address(args.address)
    except pachd.PachdInvalidArgument as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    follower = Follower(args.address, input_repo=args.input, output_repo=args.output, branch=args.branch)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: follower.stop())
    follower.run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
