"""Benchmark: one qemu VM against one netns node, measured in the same run.

- image build: the VM image, cached (the usual case) and from scratch (into
  a scratch cache under .lab/, removed after; --cached-only skips it). A
  netns node needs no image: it runs the machine's own files (0 s).
- boot to SSH: qemu start until sshd greets on the forwarded loopback port,
  and until a first command has run over SSH. netns equivalent: a fresh
  network namespace whose sshd greets on its loopback (the SSH part of a
  lab node's start; the lab's own playbook is timed by lab_bench.py).
- RSS: the qemu process once SSH works, against that sshd (a netns node's
  init is a few MB more).

Traffic: SSH to 127.0.0.1 and inside namespaces this bench creates.

usage: python bench/vm_bench.py [--cached-only]
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tests'))
from vm_testlib import SWITCH, make_keys, scratch_fabric, scratch_vm, ssh  # noqa: E402
from ansible.module_utils.podnet.kernel import rawnl  # noqa: E402
from ansible.module_utils.podnet.lab import qemu, vmimage  # noqa: E402

CACHE = ROOT / '.lab' / 'images'


def timed(call, *args):
    start = time.perf_counter()
    result = call(*args)
    return time.perf_counter() - start, result


def rss_mb(pid):
    with open('/proc/%d/status' % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS:')) / 1024


def image_build(cached_only):
    """(cached s, from-scratch s or None, image)."""
    fresh = None
    if not cached_only:
        scratch = tempfile.mkdtemp(prefix='.bench-images-', dir=ROOT / '.lab')
        try:
            fresh, _ = timed(vmimage.build, scratch, vmimage.image_key(), vmimage.machine_sources())
        finally:
            shutil.rmtree(scratch)
    vmimage.ensure_image(str(CACHE))
    cached, image = timed(vmimage.ensure_image, str(CACHE))
    return cached, fresh, image


def vm_boot(image, folder):
    """(to banner s, to first command s, RSS MB) of one VM on a scratch fabric."""
    make_keys(folder)
    with scratch_fabric() as fabric:
        vm = scratch_vm(image, folder, fabric)
        start = time.perf_counter()
        try:
            pid = qemu.start(vm)
            qemu.attach_tap(vm, SWITCH)
            qemu.wait_for_ssh(vm, timeout=240)
            banner = time.perf_counter() - start
            ssh(vm, 'true')
            return banner, time.perf_counter() - start, rss_mb(pid)
        finally:
            qemu.stop(vm)


NETNS_SSHD = '''mount -t tmpfs tmpfs /run && mkdir /run/sshd && ip link set lo up &&
exec /usr/sbin/sshd -D -f /dev/null -h "$1" -o ListenAddress=127.0.0.1 -o PidFile=none'''


def netns_boot(folder):
    """(to banner s, RSS MB) of an sshd in a fresh network namespace."""
    start = time.perf_counter()
    sshd = subprocess.Popen(['unshare', '--net', '--mount', '--propagation', 'private',
                             'sh', '-c', NETNS_SSHD, 'sshd', os.path.join(folder, 'host')])
    try:
        while not _greets_inside('/proc/%d/ns/net' % sshd.pid):
            if sshd.poll() is not None or time.perf_counter() - start > 10:
                raise RuntimeError('the netns sshd did not start')
            time.sleep(0.005)
        return time.perf_counter() - start, rss_mb(sshd.pid)
    finally:
        sshd.kill()
        sshd.wait()


def _greets_inside(netns):
    try:
        conn = rawnl.open_in(netns, socket.socket)
    except OSError:
        return False
    with conn:
        try:
            conn.settimeout(1)
            conn.connect(('127.0.0.1', 22))
            return conn.recv(64).startswith(b'SSH-')
        except OSError:
            return False


def main(cached_only):
    cached, fresh, image = image_build(cached_only)
    with tempfile.TemporaryDirectory() as folder:
        banner, command, vm_rss = vm_boot(image, folder)
        ns_banner, ns_rss = netns_boot(folder)
    print('%-24s %-14s %-14s %s' % ('', 'qemu VM', 'netns node', 'ratio'))
    print('%-24s %-14s %-14s' % ('image build, cached', '%.3f s' % cached, '0 s (none)'))
    print('%-24s %-14s %-14s' % ('image build, fresh', '%.1f s' % fresh if fresh else 'skipped',
                                 '0 s (none)'))
    print('%-24s %-14s %-14s %.0fx' % ('boot to SSH banner', '%.1f s' % banner, '%.3f s' % ns_banner,
                                      banner / ns_banner))
    print('%-24s %-14s' % ('boot to first command', '%.1f s' % command))
    print('%-24s %-14s %-14s %.0fx' % ('RSS', '%.0f MB' % vm_rss, '%.1f MB' % ns_rss, vm_rss / ns_rss))


if __name__ == '__main__':
    main('--cached-only' in sys.argv[1:])
