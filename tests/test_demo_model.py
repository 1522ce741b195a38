"""The demo's model (demo_model.py): its PNG decoding and box finding on the demo's own images and on
PNGs Pillow writes, files it cannot read, the pipeline-transform mode, and the follow mode as a real
process against a real local PFS server (open commits before it starts, new ones, a restarted server,
SIGTERM)."""
import io
import json
import logging
import signal
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib

import pytest
from PIL import Image as PILImage, ImageDraw

from label_studio_pachyderm import demo, demo_model, pachd

from conftest import restart_pfs
from waiting import wait_for

WAIT = 120  # seconds: a loaded 2-CPU machine starts Python processes slowly


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_with_filters(pixels, width, height, interlace=0):
    """An RGB PNG whose rows use filter types 0 to 4 in turn (what other encoders write), by PNG's rules."""
    stride, bpp = 3 * width, 3
    raw_rows = [bytes(pixels[y * stride:(y + 1) * stride]) for y in range(height)]
    out, previous = bytearray(), bytes(stride)
    for y, row in enumerate(raw_rows):
        kind = y % 5
        filtered = bytearray()
        for i, value in enumerate(row):
            left = row[i - bpp] if i >= bpp else 0
            up, up_left = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 0:
                predictor = 0
            elif kind == 1:
                predictor = left
            elif kind == 2:
                predictor = up
            elif kind == 3:
                predictor = (left + up) // 2
            else:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
            filtered.append((value - predictor) & 0xFF)
        out += bytes([kind]) + filtered
        previous = row
    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, interlace)
    return (b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', header) + _chunk(b'IDAT', zlib.compress(bytes(out)))
            + _chunk(b'IEND', b''))


def _pillow(mode, box, colour, size=(120, 90), **save):
    picture = PILImage.new('RGB', size, (240, 240, 240))
    ImageDraw.Draw(picture).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=colour)
    converted = picture.convert(mode) if mode != 'P' else picture.quantize(8)
    buffer = io.BytesIO()
    converted.save(buffer, format=save.pop('format', 'PNG'), **save)
    return buffer.getvalue(), picture


# ----------------------------------------------------------------------------- detection
@pytest.mark.parametrize('name, colour, box', demo.SHAPES)
def test_the_box_of_each_demo_image_is_found_where_demo_drew_it(name, colour, box):
    image = demo_model.decode_png(demo.png(256, 256, colour, box))
    found = demo_model.find_boxes(image)
    assert len(found) == 1
    expected_label = next(label for label, rgb in demo.LABEL_COLOURS if rgb == colour)
    assert found[0].label == expected_label
    assert all(abs(a - b) <= 1 for a, b in zip((found[0].x0, found[0].y0, found[0].x1, found[0].y1), box))

    path, content = demo_model.predict_file(f'sub/{name}', demo.png(256, 256, colour, box))
    assert path == f'sub/{name[:-4]}.json'
    body = json.loads(content)
    assert body['model_version'] == demo.MODEL_VERSION and body['score'] == 1.0
    (item,) = body['result']
    value = item['value']
    assert value['rectanglelabels'] == [expected_label]
    x0, y0, x1, y1 = box
    assert value['x'] == pytest.approx(100 * x0 / 256, abs=0.5) and value['y'] == pytest.approx(100 * y0 / 256, abs=0.5)
    assert value['width'] == pytest.approx(100 * (x1 - x0) / 256, abs=0.8)
    assert value['height'] == pytest.approx(100 * (y1 - y0) / 256, abs=0.8)


def test_the_prediction_names_the_tags_and_labels_of_the_demo_projects_labeling_config():
    config = ET.fromstring(demo.LABEL_CONFIG)
    rectangles = config.find('RectangleLabels')
    labels = {label.get('value') for label in rectangles.findall('Label')}
    for name, colour, box in demo.SHAPES:
        (item,) = json.loads(demo_model.predict_file(name, demo.png(256, 256, colour, box))[1])['result']
        assert item['type'] == 'rectanglelabels'
        assert (item['from_name'], item['to_name']) == (rectangles.get('name'), rectangles.get('toName'))
        assert item['to_name'] == config.find('Image').get('name')
        assert set(item['value']['rectanglelabels']) <= labels


def test_an_image_with_nothing_on_it_gets_an_empty_prediction():
    body = json.loads(demo_model.predict_file('plain.png', demo.png(64, 64, (0, 0, 0), (0, 0, 0, 0)))[1])
    assert body == {'result': [], 'score': None, 'model_version': demo.MODEL_VERSION}


# ----------------------------------------------------------------------------- decoding
def test_every_png_filter_type_is_undone():
    width, height = 23, 17
    pixels = bytes((x * 37 + y * 11 + c * 101) % 256 for y in range(height) for x in range(width) for c in range(3))
    image = demo_model.decode_png(_png_with_filters(pixels, width, height))
    assert (image.width, image.height) == (width, height)
    assert b''.join(image.rows) == pixels


@pytest.mark.parametrize('mode, save', [('RGB', {}), ('RGB', {'optimize': True}), ('RGBA', {}), ('L', {}),
                                        ('LA', {}), ('P', {}), ('P', {'bits': 4}), ('1', {}), ('I;16', {})])
def test_pngs_pillow_writes_decode_to_pillows_own_pixels_and_their_box(mode, save):
    box, colour = (30, 20, 90, 70), (220, 40, 40)
    data, _ = _pillow(mode, box, colour, **save)
    image = demo_model.decode_png(data)
    expected = PILImage.open(io.BytesIO(data))
    if mode == 'I;16':  # 16-bit grey: the decoder keeps the high byte of each sample
        grey = [value >> 8 for value in expected.getdata()]
        assert b''.join(image.rows) == bytes(v for v in grey for _ in range(3))
    else:
        assert b''.join(image.rows) == expected.convert('RGB').tobytes()
    if mode in ('RGB', 'RGBA', 'P'):  # in colour the red box is found, and labelled Red
        (found,) = demo_model.find_boxes(image)
        assert (found.label, found.x0, found.y0, found.x1, found.y1) == ('Red', *box)


def test_files_it_cannot_read_are_skipped_with_a_log_line(caplog):
    good = demo.png(32, 32, (220, 40, 40), (4, 4, 20, 20))
    jpeg, _ = _pillow('RGB', (10, 10, 40, 40), (220, 40, 40), format='JPEG')
    interlaced = _png_with_filters(bytes(3 * 8 * 8), 8, 8, interlace=1)
    bad_crc = bytearray(good)
    bad_crc[30] ^= 0xFF  # inside IHDR's data: its checksum no longer matches
    cases = {'notes.txt': b'hello', 'photo.jpg': jpeg, 'cut.png': good[:60], 'crc.png': bytes(bad_crc),
             'interlaced.png': interlaced, 'empty.png': b''}
    with caplog.at_level(logging.WARNING, logger='label_studio_pachyderm.demo_model'):
        for path, data in cases.items():
            assert demo_model.predict_file(path, data) is None, path
    for path in cases:
        assert any(path in record.getMessage() and 'skipping' in record.getMessage() for record in caplog.records), path


def test_pfs_mode_reads_the_input_directory_and_writes_the_output_directory(tmp_path):
    """As a pipeline's transform: python -m label_studio_pachyderm.demo_model pfs /pfs/images /pfs/out."""
    source, out = tmp_path / 'images', tmp_path / 'out'
    (source / 'more').mkdir(parents=True)
    out.mkdir()
    for name, colour, box in demo.SHAPES[:2]:
        (source / name).write_bytes(demo.png(256, 256, colour, box))
    (source / 'more' / demo.SHAPES[2][0]).write_bytes(demo.png(256, 256, *demo.SHAPES[2][1:]))
    (source / 'readme.txt').write_text('not an image')
    done = subprocess.run([sys.executable, '-m', 'label_studio_pachyderm.demo_model', 'pfs', str(source), str(out)],
                          capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob('*.json'))
    assert written == ['green-wide.json', 'more/blue-tall.json', 'red-square.json']
    blue = json.loads((out / 'more' / 'blue-tall.json').read_bytes())
    assert blue['result'][0]['value']['rectanglelabels'] == ['Blue']
    assert 'skipping readme.txt' in done.stderr


# ----------------------------------------------------------------------------- follow mode, a real process
class ModelProcess:
    """``python -m label_studio_pachyderm.demo_model follow ADDRESS``, its output in a log file."""

    def __init__(self, address, log_path):
        self.path = log_path
        self._log = open(log_path, 'wb')
        self.proc = subprocess.Popen([sys.executable, '-m', 'label_studio_pachyderm.demo_model', 'follow', address],
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def poll(self):
        return self.proc.poll()

    def log(self):
        return self.path.read_text(errors='replace')

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def model(tmp_path):
    started = []

    def start(address):
        process = ModelProcess(address, tmp_path / f'model{len(started)}.log')
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def _finished(client, commit, process):
    return wait_for(lambda: client.inspect_commit('default', 'detections', commit).good, timeout=WAIT,
                    what=f'detections@{commit} finished by the model', ignore=(pachd.PachdNotFound,),
                    process=process.proc, log=process.log)


def _predictions(client, commit):
    return {entry.path: json.loads(client.get_file_bytes('default', 'detections', commit, entry.path))
            for entry in client.list_files('default', 'detections', commit)}


@pytest.mark.slow
def test_follow_finishes_every_open_output_commit_survives_a_restart_and_stops_on_sigterm(pfs, model):
    client = pachd.PachdClient(pfs.address, timeout=10)
    demo.seed(pfs.address)
    first_output = client.inspect_commit('default', 'detections', 'master')
    images_head = client.branch_head('default', 'images', 'master')
    assert ('default', 'images', images_head) in first_output.provenance
    # a commit on images before the model runs: its output commit is open when the model starts
    extra = demo.png(128, 128, (40, 170, 60), (8, 16, 72, 100))
    before = client.write_commit('default', 'images', 'master', [pachd.FileOp.put('early/green.png', extra)])

    process = model(pfs.address)
    _finished(client, first_output.id, process)
    assert sorted(_predictions(client, first_output.id)) == sorted(f'{n[:-4]}.json' for n, _, _ in demo.SHAPES)
    _finished(client, before, process)
    early = _predictions(client, before)['early/green.json']
    assert early['result'][0]['value']['rectanglelabels'] == ['Green']
    assert early['result'][0]['value']['x'] == pytest.approx(100 * 8 / 128)
    assert 'from images@' + before in client.inspect_commit('default', 'detections', before).description

    # a new image: its own output commit, with the same id as its input commit
    later = client.write_commit('default', 'images', 'master',
                                [pachd.FileOp.put('later.png', demo.png(64, 64, (40, 80, 220), (0, 0, 32, 32))),
                                 pachd.FileOp.put('notes.txt', b'not an image')])
    _finished(client, later, process)
    outputs = _predictions(client, later)
    assert outputs['later.json']['result'][0]['value']['rectanglelabels'] == ['Blue']
    assert 'notes.json' not in outputs
    assert 'skipping notes.txt' in process.log()  # logged before the commit was finished

    # pachd goes away and comes back: the model follows again, and a deleted image's prediction goes
    pfs.stop()
    server = restart_pfs(pfs)
    try:
        client = pachd.PachdClient(server.address, timeout=10)
        gone = client.write_commit('default', 'images', 'master', [pachd.FileOp.remove('later.png')])
        _finished(client, gone, process)
        assert 'later.json' not in _predictions(client, gone)
        assert 'early/green.json' in _predictions(client, gone)

        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(timeout=60) == 0
        assert 'demo model: stopped' in process.log()
    finally:
        server.stop()


def test_follow_refuses_an_address_it_cannot_parse():
    done = subprocess.run([sys.executable, '-m', 'label_studio_pachyderm.demo_model', 'follow', 'ftp://host:1'],
                          capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 2 and "unsupported scheme 'ftp'" in done.stderr, done.stderr
