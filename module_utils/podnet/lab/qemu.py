"""One qemu VM of the lab: start, inspect, stop.

qemu runs in the root namespace (user-mode networking needs the machine's
own stack for the guest's apt and pip) under TCG: this machine has no
usable KVM. A VM has two NICs and adds no link to the root namespace:
- mgmt: qemu user-mode networking; SSH reaches the guest on a forwarded
  port of 127.0.0.1 only, DHCP comes from qemu;
- underlay: a tap created inside the lab's fabric namespace and handed to
  qemu as an inherited descriptor. It is not persistent, so it disappears
  with qemu; the caller puts it on its rack switch (attach_tap).
Its files live in `<run_dir>/vm-<name>/`: a qcow2 overlay on the image's
base (the base is never written), the fw_cfg files of vmguest, the qemu pid
file, QMP socket, console log, and `process` ("pid start time": a pid
alone may be reused). Refusals (preflight) come before anything starts.
"""
import errno
import fcntl
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass

from ansible.module_utils.podnet.core import names
from ansible.module_utils.podnet.core.errors import LabError, SpecError
from ansible.module_utils.podnet.kernel import rawnl
from ansible.module_utils.podnet.kernel.linux import read_stat
from ansible.module_utils.podnet.lab.vmguest import FW_CFG_NAMES, VmConfig, fw_cfg_files
from ansible.module_utils.podnet.lab.vmimage import mirror_addresses

QEMU = 'qemu-system-x86_64'
TCG = ['-accel', 'tcg,tb-size=256', '-cpu', 'max']  # tb-size: RSS ~600 MB, not 1.7 GB
# Beyond guest RAM: the 256 MB translation cache and qemu itself.
OVERHEAD_MB = 320
KERNEL_ARGS = 'root=/dev/vda rw console=ttyS0 panic=1'  # a panic ends qemu (-no-reboot)
SUN_PATH_MAX = 107
POWER_BUTTON_EVERY = 5  # seconds between ACPI power button presses in stop()
TUNSETIFF, IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x400454ca, 0x0002, 0x1000, 0x4000


@dataclass(frozen=True)
class Vm:
    """One VM as the caller declares it.
    image: a vmimage.Image; run_dir: the lab's run folder;
    fabric_netns: path of the namespace holding the rack switch
    (e.g. /proc/<fabric init pid>/ns/net); host_key: path of the VM's
    ed25519 private key (the controller pins its .pub); authorized_keys:
    path of the public key(s) root accepts."""
    lab: str
    name: str
    image: object
    run_dir: str
    ssh_port: int
    fabric_netns: str
    underlay_cidr: str
    underlay_gateway: str
    lab_prefixes: tuple
    host_key: str
    authorized_keys: str
    memory_mb: int = 512
    underlay_mtu: int = 1500

    def __str__(self):
        return self.name

    def path(self, name=''):
        return os.path.join(self.run_dir, 'vm-' + self.name, name)

    @property
    def tap(self):
        """The switch port of this node in the fabric, as for a netns node."""
        return names.fabric_port(self.name)

    @property
    def mgmt_mac(self):
        return names.stable_mac(self.lab, self.name, 'mgmt')

    @property
    def underlay_mac(self):
        return names.stable_mac(self.lab, self.name, 'underlay')

    def config(self):
        """What the guest is told at boot (vmguest)."""
        with open(self.host_key) as key, open(self.authorized_keys) as authorized:
            return VmConfig(self.name, self.underlay_mac, self.underlay_cidr, self.underlay_gateway,
                            self.mgmt_mac, tuple(self.lab_prefixes), key.read(), authorized.read(),
                            self.underlay_mtu)


FILES = ('overlay.qcow2', 'qemu.pid', 'qmp.sock', 'console.log', 'process') + tuple(
    'fw_cfg-' + name for name in FW_CFG_NAMES)


def qemu_argv(vm, tap_fd, fw_cfg_paths):
    """The qemu command line of vm; fw_cfg_paths = {fw_cfg name: file}."""
    argv = [QEMU, '-name', vm.name, '-nodefaults', '-no-user-config', '-no-reboot'] + TCG + [
        '-m', str(vm.memory_mb), '-smp', '1', '-display', 'none',
        '-kernel', vm.image.kernel, '-initrd', vm.image.initrd, '-append', KERNEL_ARGS,
        '-drive', 'file=%s,if=virtio,format=qcow2' % vm.path('overlay.qcow2'),
        '-netdev', 'user,id=m,hostfwd=tcp:127.0.0.1:%d-:22' % vm.ssh_port,
        '-device', 'virtio-net-pci,netdev=m,mac=%s,romfile=' % vm.mgmt_mac,
        '-netdev', 'tap,id=u,fd=%d' % tap_fd,
        '-device', 'virtio-net-pci,netdev=u,mac=%s,romfile=' % vm.underlay_mac,
        '-device', 'virtio-rng-pci',
        '-serial', 'file:' + vm.path('console.log'),
        '-qmp', 'unix:%s,server,nowait' % vm.path('qmp.sock'),
        '-pidfile', vm.path('qemu.pid'), '-daemonize']
    for name, path in sorted(fw_cfg_paths.items()):
        argv += ['-fw_cfg', 'name=%s,file=%s' % (name, path)]
    return argv


def refusals(vms, port_free, mem_available_mb):
    """Why these VMs must not start, as messages naming each VM (empty: go).
    port_free(port) -> bool; mem_available_mb: MemAvailable now."""
    found, seen_ports, seen_macs, needed = [], {}, {}, 0
    for vm in vms:
        if vm.ssh_port in seen_ports:
            found.append('%s: ssh_port %d is also %s\'s' % (vm, vm.ssh_port, seen_ports[vm.ssh_port]))
        elif not port_free(vm.ssh_port):
            found.append('%s: ssh_port %d is already in use on 127.0.0.1' % (vm, vm.ssh_port))
        seen_ports.setdefault(vm.ssh_port, vm.name)
        for mac in (vm.mgmt_mac, vm.underlay_mac):
            if mac in seen_macs:
                found.append('%s: MAC %s is also %s\'s' % (vm, mac, seen_macs[mac]))
            seen_macs.setdefault(mac, vm.name)
        if len(vm.path('qmp.sock')) > SUN_PATH_MAX or ',' in vm.path():
            found.append('%s: run folder %s is too long or holds a comma' % (vm, vm.path()))
        needed += vm.memory_mb + OVERHEAD_MB
        if needed > mem_available_mb:
            found.append('%s: not enough free memory: %d MB needed so far, %d MB available'
                         % (vm, needed, mem_available_mb))
    return found


def mirror_refusals(vms, mirror_addresses):
    """A lab prefix covering an address of the guest's apt mirror would send
    the guest's apt into the fabric (on some machines the mirror sits in a
    documentation range the lab also uses: pass the lab's exact outside
    addresses then)."""
    found = []
    for vm in vms:
        for prefix in vm.lab_prefixes:
            hit = [a for a in mirror_addresses if ipaddress.ip_address(a) in ipaddress.ip_network(prefix)]
            if hit:
                found.append('%s: lab prefix %s covers the apt mirror at %s' % (vm, prefix, ', '.join(hit)))
    return found


def port_free(port):
    """Whether qemu can listen on 127.0.0.1:port. Connections of a VM that
    just stopped linger in TIME_WAIT there; qemu binds past them, and so
    does this check (SO_REUSEADDR still fails on a listening socket)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(('127.0.0.1', port))
        except OSError:
            return False
    return True


def mem_available_mb(meminfo='/proc/meminfo'):
    with open(meminfo) as f:
        for line in f:
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) // 1024
    raise LabError('memory', 'no MemAvailable in %s' % meminfo)


def preflight(vms):
    """SpecError naming every VM that must not start; nothing is touched."""
    found = refusals(vms, port_free, mem_available_mb())
    found += mirror_refusals(vms, sorted({a for vm in vms for a in mirror_addresses(vm.image)}))
    if found:
        raise SpecError('qemu VMs', '; '.join(found))


def open_tap(netns, ifname):
    """A non-persistent tap named ifname inside the namespace at netns, as
    an open descriptor: the tap lives as long as some process holds it."""
    def create():
        fd = os.open('/dev/net/tun', os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH22x', ifname.encode(),
                                                   IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
        except OSError:
            os.close(fd)
            raise
        return fd
    return rawnl.open_in(netns, create)


def attach_tap(vm, bridge):
    """Put vm's tap on the rack switch `bridge` of its fabric namespace, up."""
    from ansible.module_utils.podnet.kernel.netlink import link_index, rtnl
    with rtnl(vm.fabric_netns) as ipr:
        tap, master = link_index(ipr, vm.tap), link_index(ipr, bridge)
        if tap is None or master is None:
            raise LabError(vm.name, 'no %s in the fabric' % (vm.tap if tap is None else bridge))
        ipr.link('set', index=tap, master=master, mtu=vm.underlay_mtu, state='up')
    return tap


def start(vm):
    """Boot vm unless it runs; its qemu pid. Refusals come first."""
    pid = alive(vm)
    if pid:
        return pid
    preflight([vm])
    os.makedirs(vm.path(), mode=0o700, exist_ok=True)
    try:
        fw_cfg = _write_fw_cfg(vm)
        if not os.path.exists(vm.path('overlay.qcow2')):  # kept: a restart is a reboot
            _run(vm, ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b',
                      vm.image.base, vm.path('overlay.qcow2')])
        tap = _tap_for(vm)
        try:
            _run(vm, qemu_argv(vm, tap, fw_cfg), pass_fds=(tap,))
        finally:
            os.close(tap)
        return _record_process(vm)
    except BaseException:
        stop(vm, timeout=0)
        raise


def _tap_for(vm):
    try:
        return open_tap(vm.fabric_netns, vm.tap)
    except OSError as exc:
        raise LabError(vm.name, 'tap %s in %s: %s' % (vm.tap, vm.fabric_netns, exc)) from exc


def _write_fw_cfg(vm):
    paths = {}
    for name, text in fw_cfg_files(vm.config()).items():
        paths[name] = vm.path('fw_cfg-' + name.rsplit('/', 1)[1])  # one of FILES
        fd = os.open(paths[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(text)
    return paths


def _run(vm, argv, pass_fds=()):
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          pass_fds=pass_fds, check=False)
    if done.returncode != 0:
        raise LabError(vm.name, '%s failed: %s' % (os.path.basename(argv[0]),
                                                   (done.stderr or done.stdout).strip()))


def _record_process(vm):
    with open(vm.path('qemu.pid')) as f:
        pid = int(f.read().split()[0])
    stat = read_stat(pid)
    if stat is None:
        raise LabError(vm.name, 'qemu exited at start; console:\n' + console_tail(vm))
    with open(vm.path('process'), 'w') as f:
        f.write('%d %d\n' % (pid, stat[1]))
    return pid


def alive(vm):
    """The pid of vm's running qemu, or None (pid and start time must match)."""
    try:
        with open(vm.path('process')) as f:
            pid, start = (int(word) for word in f.read().split()[:2])
    except (OSError, ValueError):
        return None
    stat = read_stat(pid)
    return pid if stat is not None and stat[1] == start else None


def console_tail(vm, lines=25):
    try:
        with open(vm.path('console.log'), errors='replace') as f:
            return '\n'.join(f.read().rstrip().splitlines()[-lines:])
    except OSError:
        return '(no console log)'


def wait_for_ssh(vm, timeout=180):
    """Wait until sshd greets on vm's forwarded port. qemu accepts on that
    port before the guest listens, so only the SSH banner counts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(vm):
            raise LabError(vm.name, 'qemu exited before SSH came up; console:\n' + console_tail(vm))
        if _ssh_banner(vm.ssh_port):
            return
        time.sleep(0.5)
    raise LabError(vm.name, 'no SSH on 127.0.0.1:%d after %d s; console:\n%s'
                   % (vm.ssh_port, timeout, console_tail(vm)))


def _ssh_banner(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=2) as conn:
            return conn.recv(64).startswith(b'SSH-')
    except OSError:
        return False


def stop(vm, timeout=60):
    """Power vm off (ACPI, then SIGKILL after timeout), then remove its
    files; True if anything was there. A VM already gone is success."""
    pid = alive(vm)
    if pid:
        _power_off(vm, pid, timeout)
    return _remove_files(vm) or bool(pid)


def _power_off(vm, pid, timeout):
    """ACPI power button until qemu exits (a press the guest got before
    logind watched the button is lost: press again), SIGKILL at timeout;
    then give the reaper a moment, so no zombie outlives stop()."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _qmp(vm, 'system_powerdown')
            if select.select([pidfd], [], [], max(0, min(POWER_BUTTON_EVERY, deadline - time.monotonic())))[0]:
                break
        else:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            if not select.select([pidfd], [], [], 10)[0]:
                raise LabError(vm.name, 'qemu %d did not exit after SIGKILL' % pid)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
    for _ in range(40):
        if read_stat(pid) is None:
            break
        time.sleep(0.05)


def _qmp(vm, command):
    """One command over QMP, qemu's machine protocol (JSON lines): after
    its greeting and the capabilities handshake, the command, and its
    return; a monitor that does not answer is ignored (SIGKILL follows)."""
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(2)
            conn.connect(vm.path('qmp.sock'))
            replies = conn.makefile('rb')
            if 'QMP' not in json.loads(replies.readline() or b'{}'):
                return
            for execute in ('qmp_capabilities', command):
                conn.sendall(json.dumps({'execute': execute}).encode() + b'\n')
                _qmp_reply(replies)
    except (OSError, ValueError):
        pass


def _qmp_reply(replies):
    """The command's return (or error), past the events qemu sends meanwhile."""
    while True:
        line = replies.readline()
        if not line:
            raise OSError('qmp: the monitor closed')
        message = json.loads(line)
        if 'return' in message or 'error' in message:
            return message


def _remove_files(vm):
    removed = False
    for name in FILES:
        try:
            os.unlink(vm.path(name))
            removed = True
        except FileNotFoundError:
            pass
    try:
        os.rmdir(vm.path())
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno == errno.ENOTEMPTY:
            raise LabError(vm.name, 'unknown files left in %s: %s' % (vm.path(), os.listdir(vm.path())))
        raise
    return removed
