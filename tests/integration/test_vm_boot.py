"""One qemu VM boots from the cached image with its underlay on a switch in
a namespace of the test's own, answers SSH on a loopback port with the host
key it was given, and leaves nothing behind when stopped.

Traffic: SSH to 127.0.0.1, and the VM's ping to 10.15.1.1 inside the test's
namespace. Nothing else leaves the guest.
"""
import os

import pytest
from podnet_testlib import ROOT
from vm_testlib import GATEWAY, SWITCH, VM_ADDRESS, link_names, make_keys, running, scratch_fabric, scratch_vm, ssh

from ansible.module_utils.podnet.lab import qemu, vmimage

pytestmark = [pytest.mark.lab, pytest.mark.vm]


def test_a_vm_boots_on_the_fabric_and_leaves_nothing(tmp_path):
    image = vmimage.ensure_image(str(ROOT / '.lab' / 'images'))
    make_keys(str(tmp_path))
    # Other labs may come and go in the root namespace meanwhile: watch taps.
    taps_before = link_names(kind='tun')
    with scratch_fabric() as fabric:
        vm = scratch_vm(image, str(tmp_path), fabric)
        try:
            pid = qemu.start(vm)
            assert qemu.alive(vm) == pid and vm.tap in link_names(fabric)
            qemu.attach_tap(vm, SWITCH)
            qemu.wait_for_ssh(vm, timeout=240)
            assert link_names(kind='tun') == taps_before, 'the VM added a tap to the root namespace'
            check_guest(vm, (tmp_path / 'host.pub').read_text())
        finally:
            qemu.stop(vm)
        assert qemu.alive(vm) is None and not running(pid)
        assert not os.path.exists(vm.path()), 'overlay, sockets or logs left'
        assert vm.tap not in link_names(fabric)
    assert link_names(kind='tun') == taps_before


GUEST_CHECKS = {
    'hostname': 'hostname',
    'addresses': 'ip -4 -o addr show',
    'ping': 'ping -c 1 -W 5 %s >/dev/null && echo ok' % GATEWAY.split('/')[0],
    'modules': 'modprobe -a vxlan br_netfilter && test -d /proc/sys/net/bridge && echo ok',
    'host_key': 'cat /etc/ssh/ssh_host_ed25519_key.pub',
    # Route lookups only (no traffic).
    'route_outside': 'ip -4 route get 203.0.113.10',
    'apt_mirror': 'ip -4 route get $(getent ahostsv4 deb.debian.org | head -1 | cut -d" " -f1)',
    'route_pods': 'ip -4 route get 10.42.7.1',
    'route_internet': 'ip -4 route get 1.1.1.1',
}


def check_guest(vm, host_pub):
    """All checks in one SSH session (each login costs seconds under TCG)."""
    script = '; '.join('echo "== %s"; %s' % item for item in GUEST_CHECKS.items())
    found = {}
    for section in ssh(vm, script).split('== ')[1:]:
        name, _, out = section.partition('\n')
        found[name] = out
    assert found['hostname'].strip() == vm.name
    assert ' %s ' % VM_ADDRESS in found['addresses']
    assert found['ping'].strip() == 'ok', 'the VM cannot ping its gateway over the tap'
    assert found['modules'].strip() == 'ok', 'modprobe vxlan br_netfilter failed'
    # ssh() pinned the given host key already; the guest's files agree.
    assert found['host_key'].split()[:2] == host_pub.split()[:2]
    # Lab prefixes take the underlay, the rest of the VM's own traffic the
    # user-mode NIC.
    assert 'via 10.15.1.1 ' in found['route_outside'] and 'via 10.15.1.1 ' in found['route_pods']
    assert 'via 10.0.2.2 ' in found['route_internet'] and 'via 10.0.2.2 ' in found['apt_mirror']
