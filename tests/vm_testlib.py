"""Plumbing the VM test and bench share: a throwaway fabric (a namespace
held by a sleeping process, with one switch holding the gateway address),
keys made in a scratch folder, and SSH to a VM with its host key pinned.

Traffic stays on 127.0.0.1 (SSH) and inside the scratch namespace.
"""
import os
import socket
import subprocess
import time
from contextlib import contextmanager

import podnet_testlib  # noqa: F401  (makes module_utils importable)
from ansible.module_utils.podnet.lab import qemu
from ansible.module_utils.podnet.kernel.netlink import ensure_address, ensure_bridge, links_by_name, rtnl, set_up

SWITCH, GATEWAY, VM_ADDRESS = 'br-rack1', '10.15.1.1/24', '10.15.1.11/24'
# The outside host's address only: on some machines the apt mirror sits in
# 203.0.113.0/24 too (qemu.mirror_refusals).
LAB_PREFIXES = ('10.42.0.0/16', '10.15.1.0/24', '203.0.113.10/32')


@contextmanager
def scratch_fabric():
    """Path of a fresh network namespace with switch SWITCH at GATEWAY;
    the namespace goes with its holder process on exit."""
    holder = subprocess.Popen(['unshare', '--net', '--', 'sleep', 'infinity'])
    netns = '/proc/%d/ns/net' % holder.pid
    try:
        deadline = time.monotonic() + 5
        while os.readlink(netns) == os.readlink('/proc/self/ns/net') and time.monotonic() < deadline:
            time.sleep(0.01)
        with rtnl(netns) as ipr:
            switch = ensure_bridge(ipr, SWITCH, 1500)
            ensure_address(ipr, switch, GATEWAY)
            set_up(ipr, switch)
            set_up(ipr, ipr.link_lookup(ifname='lo')[0])
        yield netns
    finally:
        holder.kill()
        holder.wait()


def make_keys(folder):
    """`client` (the lab's key) and `host` (the VM's host key) in folder."""
    for name in ('client', 'host'):
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', name,
                        '-f', os.path.join(folder, name)], check=True)


def scratch_vm(image, folder, fabric, name='vmtest1'):
    """A Vm on the scratch fabric with keys from make_keys(folder)."""
    return qemu.Vm(lab='vmtest', name=name, image=image, run_dir=os.path.join(folder, 'run'),
                   ssh_port=free_port(), fabric_netns=fabric, underlay_cidr=VM_ADDRESS,
                   underlay_gateway=GATEWAY.split('/')[0], lab_prefixes=LAB_PREFIXES,
                   host_key=os.path.join(folder, 'host'),
                   authorized_keys=os.path.join(folder, 'client.pub'))


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def link_names(netns=None, kind=None):
    """Names of the links in netns (this namespace if None), of one kind if given."""
    with rtnl(netns) as ipr:
        return {name for name, link in links_by_name(ipr).items()
                if kind is None or link.get(('IFLA_LINKINFO', 'IFLA_INFO_KIND')) == kind}


def running(pid):
    """Whether pid is a live process (a zombie awaiting its reaper is not)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def ssh(vm, command):
    """stdout of command run as root on vm; the host key must be the one given."""
    folder = os.path.dirname(vm.host_key)
    known = os.path.join(folder, 'known_hosts')
    with open(vm.host_key + '.pub') as f:
        host_pub = ' '.join(f.read().split()[:2])
    with open(known, 'w') as f:
        f.write('[127.0.0.1]:%d %s\n' % (vm.ssh_port, host_pub))
    done = subprocess.run(
        ['ssh', '-F', '/dev/null', '-i', os.path.join(folder, 'client'), '-p', str(vm.ssh_port),
         '-o', 'UserKnownHostsFile=' + known, '-o', 'StrictHostKeyChecking=yes',
         '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20', 'root@127.0.0.1', command],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, '%s on %s: %s' % (command, vm, done.stderr.strip())
    return done.stdout
