"""The base image of the qemu provider: Debian packages only, built once.

`ensure_image(cache_root)` returns the cached image whose key matches, or
builds it: mmdebstrap (root mode, minbase, from this machine's own Debian
mirror) into a folder, the guest files below written in, packed with
`mkfs.ext4 -d` (no loop device) and converted to a qcow2 base, with the
kernel and initrd beside it (qemu boots them with -kernel/-initrd). The key
hashes the package list and the guest files, so the image is rebuilt only
when those change.

A build runs in `.build-<key>-<pid>`, renamed to `<key>` only when complete:
an interrupted build never leaves a half image under the key, and the next
build sweeps its folder (after making sure mmdebstrap left no mount in it).
Each step is a named argv; a failing step raises LabError naming the step
(for mmdebstrap, also the packages apt could not find) and stderr's tail.

The guest knows nothing of its lab until it boots: the unit
podnet-vm-config reads hostname, addresses, host key and authorized keys
from qemu fw_cfg files (vmguest.py), so one base serves every VM.
"""
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from ansible.module_utils.podnet.core.errors import LabError
from ansible.module_utils.podnet.lab.vmguest import ENABLE, GUEST_FILES, MASK

SUITE = 'bookworm'
SUITES = (SUITE, SUITE + '-updates', SUITE + '-security')
# What a node needs beyond minbase: boot and SSH, what roles/node and
# roles/pods install on a real VM (so their apt tasks find it done),
# python3-apt for Ansible's apt module, dbus so that logind turns qemu's
# ACPI power button into a clean poweroff.
PACKAGES = (
    'linux-image-cloud-amd64', 'systemd-sysv', 'udev', 'dbus', 'openssh-server',
    'python3', 'python3-venv', 'python3-apt', 'python3-pyroute2', 'iproute2',
    'nftables', 'kmod', 'procps', 'iputils-ping', 'curl', 'ca-certificates', 'util-linux',
)
DISK_SIZE = '4G'  # sparse: the qcow2 base holds only what is used (~0.5 GB)
BASE, KERNEL, INITRD, MANIFEST = 'base.qcow2', 'vmlinuz', 'initrd.img', 'image.json'
SOURCES = ('/etc/apt/sources.list', '/etc/apt/sources.list.d')


@dataclass(frozen=True)
class Image:
    """A built image: the folder holding base, kernel and initrd."""
    path: str
    key: str

    @property
    def base(self):
        return os.path.join(self.path, BASE)

    @property
    def kernel(self):
        return os.path.join(self.path, KERNEL)

    @property
    def initrd(self):
        return os.path.join(self.path, INITRD)


def image_key(packages=PACKAGES, guest_files=GUEST_FILES, enable=ENABLE, mask=MASK):
    """16 hex naming the image: what goes in, and the files baked in."""
    recipe = {'suite': SUITE, 'packages': sorted(packages), 'disk': DISK_SIZE,
              'files': {path: [text, mode] for path, (text, mode) in guest_files.items()},
              'enable': list(enable), 'mask': list(mask)}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def debian_sources(files):
    """The one-line apt sources of the Debian suites this image uses, from
    [(file name, text)] of the machine's sources.list and .sources files."""
    found = []
    for name, text in files:
        entries = _deb822(text) if name.endswith('.sources') else _one_line(text)
        for uri, suite, components in entries:
            if suite in SUITES:
                found.append('deb %s %s %s' % (uri, suite, ' '.join(components)))
    return list(dict.fromkeys(found))


def _one_line(text):
    for line in text.splitlines():
        words = re.sub(r'\[[^]]*\]', '', line.split('#')[0]).split()
        if len(words) >= 4 and words[0] == 'deb':
            yield words[1], words[2], words[3:]


def _deb822(text):
    for stanza in re.split(r'\n\s*\n', text):
        fields = {}
        for line in stanza.splitlines():
            if ':' in line and not line.startswith(('#', ' ')):
                key, value = line.split(':', 1)
                fields[key.strip()] = value.split()
        if 'deb' in fields.get('Types', []) and fields.get('Enabled', ['yes']) != ['no']:
            for uri in fields.get('URIs', []):
                for suite in fields.get('Suites', []):
                    yield uri, suite, fields.get('Components', [])


def machine_sources(paths=SOURCES):
    """debian_sources() of this machine; LabError if it has no Debian mirror."""
    files = []
    for path in paths:
        names = [os.path.join(path, n) for n in sorted(os.listdir(path))] if os.path.isdir(path) else [path]
        files += [(n, open(n).read()) for n in names if os.path.isfile(n)]
    found = debian_sources(files)
    if not any(' %s ' % SUITE in line for line in found):
        raise LabError('image build', 'no Debian %s mirror in %s' % (SUITE, ', '.join(paths)))
    return found


def mirror_addresses(image):
    """IPv4 addresses the image's apt mirrors resolve to on this machine
    (the guest resolves through qemu, which asks this machine)."""
    with open(os.path.join(image.path, MANIFEST)) as f:
        hosts = {urlsplit(line.split()[1]).hostname for line in json.load(f)['sources']}
    found = set()
    for host in hosts:
        try:
            found.update(info[4][0] for info in socket.getaddrinfo(host, None, socket.AF_INET))
        except OSError:
            continue  # unresolvable here: the guest cannot reach it either
    return sorted(found)


def cached(cache_root, key=None):
    """The built image of key under cache_root, or None."""
    key = key or image_key()
    path = os.path.join(cache_root, key)
    return Image(path, key) if os.path.isfile(os.path.join(path, MANIFEST)) else None


def ensure_image(cache_root, log=None):
    """The image of the current recipe, built first if it is not cached.
    Concurrent callers wait for one build (a lock per key)."""
    key = image_key()
    os.makedirs(cache_root, mode=0o755, exist_ok=True)
    with open(os.path.join(cache_root, '.%s.lock' % key), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = cached(cache_root, key)
        if found:
            return found
        return build(cache_root, key, machine_sources(), log)


TAIL_LINES = 15


def build(cache_root, key, sources, log=None):
    """Build the image of key under cache_root; returns its Image."""
    started = time.monotonic()
    sweep_stale_builds(cache_root, key)
    work = os.path.join(cache_root, '.build-%s-%d' % (key, os.getpid()))
    rootfs = os.path.join(work, 'rootfs')
    os.makedirs(work, mode=0o700)
    try:
        _bootstrap(rootfs, sources, log)
        _configure(rootfs)
        _pack(rootfs, work)
        _remove_tree(rootfs)
        manifest = {'key': key, 'suite': SUITE, 'packages': list(PACKAGES),
                    'sources': sources, 'build_seconds': round(time.monotonic() - started, 1)}
        with open(os.path.join(work, MANIFEST), 'w') as f:
            json.dump(manifest, f, indent=1)
        os.chmod(work, 0o755)
        os.rename(work, os.path.join(cache_root, key))
    except BaseException:
        _remove_tree(work)
        raise
    return Image(os.path.join(cache_root, key), key)


def run_step(step, argv, log=None):
    """Run one build step; LabError naming it, with stderr's tail, on failure."""
    if log:
        log('image build: %s' % step)
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError('image build: %s' % step, failure_text(done.stderr or done.stdout))
    return done.stdout


def failure_text(stderr):
    """The packages apt could not find, if any, then stderr's last lines."""
    missing = re.findall(r'Unable to locate package (\S+)', stderr)
    missing += re.findall(r"Package '?([^' ]+)'? has no installation candidate", stderr)
    head = 'missing package(s): %s\n' % ', '.join(dict.fromkeys(missing)) if missing else ''
    return head + '\n'.join(stderr.strip().splitlines()[-TAIL_LINES:])


def _bootstrap(rootfs, sources, log):
    # Apt's lists stay in the image: a converge's `apt update` within a day
    # of the build is then skipped (cache_valid_time).
    run_step('mmdebstrap', ['mmdebstrap', '--mode=root', '--variant=minbase',
                            '--include=' + ','.join(PACKAGES),
                            '--skip=cleanup/apt/lists', SUITE, rootfs] + sources, log)


def _configure(rootfs):
    """Write the guest files, enable and mask units, drop baked host keys
    (each VM gets its own at boot) and the machine id."""
    for path, (text, mode) in GUEST_FILES.items():
        target = rootfs + path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(target):
            os.unlink(target)
        with open(target, 'w') as f:
            f.write(text)
        os.chmod(target, mode)
    run_step('systemctl enable', ['systemctl', '--root=' + rootfs, 'enable', '--quiet'] + list(ENABLE))
    run_step('systemctl mask', ['systemctl', '--root=' + rootfs, 'mask', '--quiet'] + list(MASK))
    for key in glob.glob(os.path.join(rootfs, 'etc/ssh/ssh_host_*')):
        os.unlink(key)
    open(os.path.join(rootfs, 'etc/machine-id'), 'w').close()
    _require_fw_cfg(rootfs)


def _require_fw_cfg(rootfs):
    """The guest reads its config through qemu_fw_cfg: refuse a kernel without it."""
    configs = glob.glob(os.path.join(rootfs, 'boot/config-*'))
    text = open(configs[0]).read() if configs else ''
    if not re.search(r'^CONFIG_FW_CFG_SYSFS=[ym]$', text, re.M):
        raise LabError('image build: kernel', 'the kernel lacks CONFIG_FW_CFG_SYSFS (qemu_fw_cfg)')


def _pack(rootfs, work):
    """Kernel and initrd out, the tree into an ext4 raw disk, then qcow2."""
    for name, pattern in ((KERNEL, 'boot/vmlinuz-*'), (INITRD, 'boot/initrd.img-*')):
        found = sorted(glob.glob(os.path.join(rootfs, pattern)))
        if not found:
            raise LabError('image build: kernel', 'no %s in the rootfs' % pattern)
        shutil.copyfile(found[-1], os.path.join(work, name))
    raw = os.path.join(work, 'disk.raw')
    run_step('mkfs.ext4', ['mkfs.ext4', '-q', '-F', '-L', 'podnet-root', '-d', rootfs, raw, DISK_SIZE])
    base = os.path.join(work, BASE)
    run_step('qemu-img convert', ['qemu-img', 'convert', '-O', 'qcow2', raw, base])
    os.unlink(raw)
    os.chmod(base, 0o444)  # overlays only: the base is never booted read-write


def mounts_under(path, mountinfo='/proc/self/mountinfo'):
    """Mount points at or below path (mmdebstrap mounts /proc, /sys, /dev
    in its target; a killed run leaves them)."""
    path = os.path.realpath(path)
    with open(mountinfo) as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == path or p.startswith(path + '/')]


def _remove_tree(work):
    """Remove a build folder, unmounting first; never delete through a mount."""
    if not os.path.isdir(work):
        return
    for point in sorted(mounts_under(work), key=len, reverse=True):
        subprocess.run(['umount', '--lazy', point], capture_output=True, check=False)
    left = mounts_under(work)
    if left:
        raise LabError('image build', 'mounts left under %s, not removed: %s' % (work, left))
    shutil.rmtree(work)


def sweep_stale_builds(cache_root, key):
    """Remove build folders of key left by builds whose process is gone."""
    for work in glob.glob(os.path.join(cache_root, '.build-%s-*' % key)):
        pid = work.rsplit('-', 1)[1]
        if pid.isdigit() and not os.path.exists('/proc/%s' % pid):
            _remove_tree(work)
