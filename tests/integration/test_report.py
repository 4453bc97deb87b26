"""The conformance report (issue 9): a run of the conformance suite writes
JUnit XML and one self-contained HTML page, and that page renders in
headless Chromium with every guarantee listed and a truth table drawn."""
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ElementTree
import zlib

import pytest
from integration.conftest import VENV_BIN, playbook
from podnet_testlib import ROOT

pytestmark = pytest.mark.lab

GUARANTEES = ['G%d' % n for n in range(1, 8)]
ALLOWED_GREEN = (0x2d, 0xa4, 0x4e)  # td.allowed in report.STYLE


@pytest.fixture(scope='module')
def report(multirack, tmp_path_factory):
    """A run of G1, G2 and the (skipped, without PODNET_G5) G5 checks on the
    multirack lab: (its folder, the pytest run)."""
    playbook(multirack.inventory, 'playbooks/site.yml')
    folder = tmp_path_factory.mktemp('report')
    env = {k: v for k, v in os.environ.items() if k not in ('PODNET_G5', 'MOLECULE_SCENARIO_NAME')}
    done = subprocess.run(
        [str(VENV_BIN / 'python'), '-m', 'pytest', '-p', 'no:cacheprovider', 'tests/conformance',
         '--ansible-inventory', str(multirack.inventory), '--podnet-report', str(folder),
         '-k', 'g1_pod_ip or g2_pod_sandbox or network_policy'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]
    return folder, done


def chromium(*args):
    """Headless Chromium on a local file, kept off every network: no
    background services, and no name resolves."""
    browser = shutil.which('chromium')
    assert browser, 'chromium is missing: make test installs it (bin/bootstrap --tests)'
    profile = ROOT / '.lab' / 'chromium-profile'
    try:
        return subprocess.run(
            [browser, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
             '--user-data-dir=%s' % profile, '--no-first-run', '--disable-sync',
             '--disable-background-networking', '--disable-component-update',
             '--host-resolver-rules=MAP * ~NOTFOUND', *args],
            capture_output=True, text=True, timeout=120, check=True)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_junit_xml_lists_every_check_of_the_run(report):
    folder, done = report
    suite = ElementTree.parse(folder / 'junit.xml').getroot().find('testsuite')
    ran = re.search(r'(\d+) passed, (\d+) skipped', done.stdout)
    assert ran, done.stdout[-2000:]
    assert int(suite.get('tests')) == int(ran.group(1)) + int(ran.group(2))
    assert int(suite.get('skipped')) == int(ran.group(2)) and suite.get('failures') == '0'
    assert 'podnet conformance report: %s/conformance.html' % folder in done.stdout


def test_the_page_loads_nothing_from_elsewhere(report):
    folder, _ = report
    page = (folder / 'conformance.html').read_text()
    assert not re.search(r'<(script|link|img|iframe)\b|\bsrc=|url\(', page, re.I)
    assert '<svg' in page, 'the picture of the cluster is not in the page'


def test_chromium_renders_the_guarantees_and_a_grid(report, tmp_path):
    folder, _ = report
    url = (folder / 'conformance.html').as_uri()
    dom = chromium('--dump-dom', url).stdout
    summary = dom[dom.index('id="guarantees"'):dom.index('</table>', dom.index('id="guarantees"'))]
    for ident in GUARANTEES:
        assert '<b>%s</b>' % ident in summary, ident
    assert re.search(r'<b>G5</b>.*?badge skipped', summary), 'G5 ran without PODNET_G5'
    pods = len(re.findall(r'<td class="(?:allowed|denied|undecided)', dom))
    assert pods >= 5 * 5, 'no truth table with cells: %d cells' % pods

    # Tall enough for the summary of every guarantee and the first grid
    # under it: the summary grows with each check family the suite gains.
    shot = tmp_path / 'report.png'
    chromium('--window-size=1280,4000', '--screenshot=%s' % shot, url)
    width, height, pixels = read_png(shot.read_bytes())
    assert (width, height) == (1280, 4000)
    green = sum(1 for p in pixels if close(p, ALLOWED_GREEN))
    assert green > 5 * 4 * 200, 'the grid is not on screen: %d allowed-green pixels' % green


def close(pixel, colour, slack=12):
    return all(abs(a - b) <= slack for a, b in zip(pixel, colour))


def read_png(data):
    """(width, height, [(r, g, b)]) of an 8-bit RGB or RGBA PNG."""
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    position, idat, header = 8, b'', None
    while position < len(data):
        length, kind = struct.unpack('>I4s', data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b'IHDR':
            header = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT':
            idat += body
    width, height, depth, colour = header[:4]
    assert depth == 8 and colour in (2, 6), header
    step = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * step
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        row = unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), previous, step)
        rows.append(row)
        previous = row
    return width, height, [tuple(r[x:x + 3]) for r in rows for x in range(0, stride, step)]


def unfilter(kind, row, above, step):
    for i in range(len(row)):
        left = row[i - step] if i >= step else 0
        up, corner = above[i], above[i - step] if i >= step else 0
        if kind == 1:
            row[i] = (row[i] + left) & 0xff
        elif kind == 2:
            row[i] = (row[i] + up) & 0xff
        elif kind == 3:
            row[i] = (row[i] + (left + up) // 2) & 0xff
        elif kind == 4:
            row[i] = (row[i] + paeth(left, up, corner)) & 0xff
    return row


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c
