"""Lab nodes that are qemu VMs (`podnet_lab_kind: qemu`).

A VM node meets the netns node's contract: it runs or is booted again, its
underlay is a port of its rack switch in the fabric namespace (a tap instead
of a veth), and lab teardown powers it off and removes its files. It is
managed over SSH on a port qemu forwards on 127.0.0.1: no link of it appears
in the root namespace, and the user-mode NIC that carries SSH also carries
the guest's own apt and pip traffic (only the VM's own: see vmguest).
The guest pins the lab's host key (given at boot) and accepts the lab's
client key, so the inventory's SSH settings are the netns lab's.
"""
import os

from ansible.module_utils.podnet.core import names
from ansible.module_utils.podnet.kernel.netlink import links_by_name, rtnl
from ansible.module_utils.podnet.lab import ssh, qemu, vmimage

SSH_WAIT_SECONDS = 240  # TCG boots in 20-40 s alone; three at once on two cores take longer


class LabVms:
    def __init__(self, spec, paths, cluster_cidr):
        self.spec = spec
        self.paths = paths
        self.cluster_cidr = cluster_cidr

    def nodes(self):
        return [n for n in self.spec.nodes if n.kind == 'qemu']

    def is_vm(self, host):
        return any(n.name == host for n in self.nodes())

    def vm(self, host, fabric_pid, image=None):
        node = next(n for n in self.nodes() if n.name == host)
        rack = self.spec.racks[node.rack]
        return qemu.Vm(
            lab=self.spec.name, name=node.name, image=image, run_dir=self.paths.run_dir,
            ssh_port=node.ssh_port, fabric_netns='/proc/%s/ns/net' % fabric_pid,
            underlay_cidr='%s/%d' % (node.underlay_ip, rack.network.prefixlen),
            underlay_gateway=str(rack.gateway), lab_prefixes=self.lab_prefixes(),
            host_key=os.path.join(self.paths.ssh_dir, ssh.HOST_KEY),
            authorized_keys=os.path.join(self.paths.ssh_dir, ssh.CLIENT_KEY + '.pub'),
            underlay_mtu=self.spec.mtu)

    def lab_prefixes(self):
        """What the guest routes over the underlay whatever its own traffic
        does: the cluster, the racks and the outside host (its address only:
        the outside range may hold a package mirror's address)."""
        return tuple([self.cluster_cidr] + [str(s.network) for s in self.spec.racks.values()]
                     + ['%s/32' % self.spec.outside_host])

    def state(self, host, fabric_pid):
        vm = self.vm(host, fabric_pid)
        pid = qemu.alive(vm)
        if pid is None:
            return {'pid': None, 'problems': ['not running']}
        problems = [] if fabric_pid is None else self._port_problems(vm, fabric_pid, host)
        return {'pid': pid, 'problems': problems}

    def _port_problems(self, vm, fabric_pid, host):
        node = next(n for n in self.nodes() if n.name == host)
        with rtnl(vm.fabric_netns) as ipr:
            links = links_by_name(ipr)
        port, bridge = links.get(vm.tap), links.get(names.rack_bridge(node.rack))
        if port is None or bridge is None or port.get('IFLA_MASTER') != bridge['index']:
            return ['its tap %s is not on %s' % (vm.tap, names.rack_bridge(node.rack))]
        return []

    def create(self, host, fabric_pid):
        """Boot host's VM (building the image first if its recipe is new)
        and put its tap on the rack switch; its qemu pid."""
        image = vmimage.ensure_image(os.path.join(self.paths.lab_dir, 'images'))
        vm = self.vm(host, fabric_pid, image)
        qemu.stop(vm, timeout=20)  # a VM with a broken underlay is rebooted whole
        pid = qemu.start(vm)
        node = next(n for n in self.nodes() if n.name == host)
        qemu.attach_tap(vm, names.rack_bridge(node.rack))
        return pid

    def destroy(self, host):
        qemu.stop(self.vm(host, None))

    def wait_for_ssh(self, hosts):
        for host in hosts:
            qemu.wait_for_ssh(self.vm(host, None), SSH_WAIT_SECONDS)

    def control_socket_prefixes(self):
        """SSH master sockets of the VMs (ansible's %h-%p-%r)."""
        return ['127.0.0.1-%d-' % n.ssh_port for n in self.nodes()]
