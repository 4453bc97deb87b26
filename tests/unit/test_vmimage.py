"""The VM base image: its cache key, the mirror it is built from, and how
a failed build step is reported."""
from ansible.module_utils.podnet.lab import vmimage
from ansible.module_utils.podnet.lab.vmguest import GUEST_FILES

MACHINE_SOURCES = [
    ('/etc/apt/sources.list.d/debian.sources', '''Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
'''),
    ('/etc/apt/sources.list.d/google-cloud-sdk.list',
     'deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n'),
    ('/etc/apt/sources.list.d/nodesource.sources',
     'Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n'),
    ('/etc/apt/sources.list', '# deb http://old.example/debian bookworm main\n'
                              'deb [arch=amd64] http://mirror.example/debian bookworm main contrib\n'),
]


def test_key_is_stable_and_follows_packages_and_guest_files():
    key = vmimage.image_key()
    assert key == vmimage.image_key() and len(key) == 16
    assert vmimage.image_key(packages=vmimage.PACKAGES + ('vim',)) != key
    assert vmimage.image_key(packages=tuple(reversed(vmimage.PACKAGES))) == key
    changed = dict(GUEST_FILES, **{'/etc/motd': ('hello\n', 0o644)})
    assert vmimage.image_key(guest_files=changed) != key


def test_only_the_machines_debian_suites_are_used():
    assert vmimage.debian_sources(MACHINE_SOURCES) == [
        'deb http://deb.debian.org/debian bookworm main',
        'deb http://deb.debian.org/debian bookworm-updates main',
        'deb http://deb.debian.org/debian-security bookworm-security main',
        'deb http://mirror.example/debian bookworm main contrib',
    ]


def test_a_machine_without_a_debian_mirror_is_refused(tmp_path):
    (tmp_path / 'other.list').write_text('deb https://example.org/apt nodistro main\n')
    try:
        vmimage.machine_sources((str(tmp_path),))
    except vmimage.LabError as exc:
        assert 'no Debian bookworm mirror' in str(exc)
    else:
        raise AssertionError('accepted a machine without a Debian mirror')


def test_a_failed_step_names_the_missing_package_and_keeps_the_tail():
    stderr = '\n'.join(['I: line %d' % i for i in range(40)] + [
        'E: Unable to locate package linux-image-clowd-amd64', 'E: apt-get failed'])
    text = vmimage.failure_text(stderr)
    assert text.startswith('missing package(s): linux-image-clowd-amd64\n')
    assert text.endswith('E: apt-get failed') and 'line 10\n' not in text
    assert len(text.splitlines()) == 1 + vmimage.TAIL_LINES


def test_run_step_raises_naming_the_step():
    try:
        vmimage.run_step('mkfs.ext4', ['sh', '-c', 'echo boom >&2; exit 3'])
    except vmimage.LabError as exc:
        assert str(exc) == 'image build: mkfs.ext4: boom'
    else:
        raise AssertionError('a failed step passed')


def test_mounts_left_by_a_killed_build_are_found(tmp_path):
    work = tmp_path / '.build-k-1'
    info = tmp_path / 'mountinfo'
    info.write_text('22 1 0:21 / /proc rw - proc proc rw\n'
                    '90 1 0:5 / %s/rootfs/proc rw - proc proc rw\n'
                    '91 1 0:6 / %s-other rw - tmpfs t rw\n' % (work, work))
    assert vmimage.mounts_under(str(work), str(info)) == ['%s/rootfs/proc' % work]


def test_cached_needs_the_manifest(tmp_path):
    key = vmimage.image_key()
    (tmp_path / key).mkdir()
    assert vmimage.cached(str(tmp_path)) is None
    (tmp_path / key / vmimage.MANIFEST).write_text('{}')
    image = vmimage.cached(str(tmp_path))
    assert image.base == str(tmp_path / key / 'base.qcow2') and image.key == key


def test_mirror_addresses_come_from_the_images_own_sources(tmp_path):
    (tmp_path / vmimage.MANIFEST).write_text('{"sources": ["deb http://localhost/debian bookworm main"]}')
    assert vmimage.mirror_addresses(vmimage.Image(str(tmp_path), 'k')) == ['127.0.0.1']
