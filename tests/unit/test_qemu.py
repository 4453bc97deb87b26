"""The qemu command line of a VM and the refusals checked before any start."""
import pytest

from ansible.module_utils.podnet.lab import qemu
from ansible.module_utils.podnet.lab.vmimage import Image


def vm(name='node1', port=2201, memory=512, run_dir='/srv/podnet/.lab/lab', lab='lab'):
    return qemu.Vm(lab=lab, name=name, image=Image('/img/k', 'k'), run_dir=run_dir, ssh_port=port,
                   fabric_netns='/proc/1/ns/net', underlay_cidr='10.11.1.11/24',
                   underlay_gateway='10.11.1.1', lab_prefixes=('10.42.0.0/16',),
                   host_key='/keys/node1', authorized_keys='/keys/client.pub', memory_mb=memory)


def option(argv, flag):
    """Every value given to flag in argv."""
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_argv_boots_tcg_from_an_overlay_with_the_extracted_kernel():
    argv = qemu.qemu_argv(vm(), 7, {'opt/podnet/hostname': '/run/h'})
    assert argv[0] == 'qemu-system-x86_64'
    assert option(argv, '-accel') == ['tcg,tb-size=256'] and option(argv, '-cpu') == ['max']
    assert option(argv, '-m') == ['512'] and option(argv, '-smp') == ['1']
    assert option(argv, '-kernel') == ['/img/k/vmlinuz'] and option(argv, '-initrd') == ['/img/k/initrd.img']
    assert 'root=/dev/vda' in option(argv, '-append')[0] and 'console=ttyS0' in option(argv, '-append')[0]
    assert option(argv, '-drive') == ['file=/srv/podnet/.lab/lab/vm-node1/overlay.qcow2,if=virtio,format=qcow2']
    assert '/img/k/base.qcow2' not in ' '.join(argv), 'the base is never booted'
    assert option(argv, '-serial') == ['file:/srv/podnet/.lab/lab/vm-node1/console.log']
    assert option(argv, '-qmp') == ['unix:/srv/podnet/.lab/lab/vm-node1/qmp.sock,server,nowait']
    assert option(argv, '-pidfile') == ['/srv/podnet/.lab/lab/vm-node1/qemu.pid'] and '-daemonize' in argv
    assert option(argv, '-display') == ['none']
    assert option(argv, '-fw_cfg') == ['name=opt/podnet/hostname,file=/run/h']


def test_argv_has_ssh_on_loopback_only_and_the_underlay_as_an_inherited_tap():
    machine = vm()
    argv = qemu.qemu_argv(machine, 7, {})
    assert option(argv, '-netdev') == ['user,id=m,hostfwd=tcp:127.0.0.1:2201-:22', 'tap,id=u,fd=7']
    devices = option(argv, '-device')
    assert 'virtio-net-pci,netdev=m,mac=%s,romfile=' % machine.mgmt_mac in devices
    assert 'virtio-net-pci,netdev=u,mac=%s,romfile=' % machine.underlay_mac in devices


def test_every_nic_has_its_own_stable_mac_and_the_tap_its_switch_port_name():
    one, two = vm('node1'), vm('node2')
    macs = {one.mgmt_mac, one.underlay_mac, two.mgmt_mac, two.underlay_mac}
    assert len(macs) == 4 and one.mgmt_mac == vm('node1').mgmt_mac
    assert one.tap == 'p-node1'


def free(port):
    return port != 2299


def test_nothing_is_refused_when_ports_macs_and_memory_are_fine():
    assert qemu.refusals([vm('node1', 2201), vm('node2', 2202)], free, 4096) == []


def test_a_port_in_use_or_twice_is_refused_naming_the_vm():
    assert qemu.refusals([vm('node1', 2299)], free, 4096) == [
        'node1: ssh_port 2299 is already in use on 127.0.0.1']
    assert qemu.refusals([vm('node1', 2201), vm('node2', 2201)], free, 4096) == [
        "node2: ssh_port 2201 is also node1's"]


def test_duplicate_macs_are_refused_naming_the_vm():
    same = [vm('node1', 2201), vm('node1', 2202, run_dir='/other')]
    found = qemu.refusals(same, free, 4096)
    assert found and all(f.startswith("node1: MAC ") and f.endswith("is also node1's") for f in found)


def test_not_enough_memory_names_the_first_vm_that_does_not_fit():
    need = 512 + qemu.OVERHEAD_MB
    found = qemu.refusals([vm('node1', 2201), vm('node2', 2202)], free, need + 100)
    assert found == ['node2: not enough free memory: %d MB needed so far, %d MB available'
                     % (2 * need, need + 100)]


def test_a_run_folder_qemu_cannot_use_is_refused():
    assert qemu.refusals([vm(run_dir='/x' * 60)], free, 4096)[0].startswith('node1: run folder')
    assert qemu.refusals([vm(run_dir='/a,b')], free, 4096)[0].startswith('node1: run folder')


def test_preflight_raises_before_anything_starts(monkeypatch):
    monkeypatch.setattr(qemu, 'mem_available_mb', lambda: 100)
    monkeypatch.setattr(qemu, 'mirror_addresses', lambda image: [])
    with pytest.raises(qemu.SpecError, match='node1: not enough free memory'):
        qemu.preflight([vm(port=0)])


def test_mem_available_reads_meminfo(tmp_path):
    meminfo = tmp_path / 'meminfo'
    meminfo.write_text('MemTotal: 24000000 kB\nMemAvailable: 2097152 kB\n')
    assert qemu.mem_available_mb(str(meminfo)) == 2048


def test_a_lab_prefix_covering_the_apt_mirror_is_refused():
    machine = qemu.Vm(**dict(vm().__dict__, lab_prefixes=('10.42.0.0/16', '203.0.113.0/24')))
    assert qemu.mirror_refusals([machine], ['203.0.113.80']) == [
        'node1: lab prefix 203.0.113.0/24 covers the apt mirror at 203.0.113.80']
    exact = qemu.Vm(**dict(vm().__dict__, lab_prefixes=('203.0.113.10/32',)))
    assert qemu.mirror_refusals([exact], ['203.0.113.80']) == []


def test_a_port_left_in_time_wait_by_a_stopped_vm_is_free_but_a_listener_is_not():
    """Regression: lab down then up at once was refused, `ssh_port 2231 is
    already in use`, by the connections of the VM just stopped."""
    import socket
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(('127.0.0.1', 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not qemu.port_free(port)
        client = socket.create_connection(('127.0.0.1', port))
        served, _ = listener.accept()
        served.close()  # the server side closes first, as a dying qemu does: TIME_WAIT on `port`
        client.close()
    assert qemu.port_free(port)


def test_the_power_button_is_pressed_over_qmp(tmp_path):
    """Regression (issue 22): qemu's human monitor was scraped for its
    prompt; QMP, its machine protocol, says when a command is done."""
    import json
    import socket
    import threading
    from types import SimpleNamespace
    from ansible.module_utils.podnet.lab import qemu
    path = str(tmp_path / 'qmp.sock')
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    heard = []

    def serve():
        conn, _ = server.accept()
        with conn, conn.makefile('rb') as lines:
            conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\n')
            for _ in range(2):
                heard.append(json.loads(lines.readline())['execute'])
                if heard[-1] == 'system_powerdown':
                    conn.sendall(b'{"event": "POWERDOWN", "data": {}}\n')
                conn.sendall(b'{"return": {}}\n')
    thread = threading.Thread(target=serve)
    thread.start()
    qemu._qmp(SimpleNamespace(path=lambda name: path), 'system_powerdown')
    thread.join(5)
    server.close()
    assert heard == ['qmp_capabilities', 'system_powerdown']
