#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: bring the embedded lab's hosts and networks up or down."""

DOCUMENTATION = r'''
---
module: podnet_lab
short_description: Run the embedded lab whose namespace hosts stand in for VMs
description:
  - Reconciles the whole lab in one call, on the controller. Each node is an init
    process holding its own network, mount, UTS, IPC and PID namespaces, with the
    inventory name as hostname, a private C(/run) (so C(ip netns) is per node), a
    private state directory and an sshd bound to its management address only.
  - A fabric host holds one switch (bridge) per rack and routes between racks and
    to an emulated outside host in 203.0.113.0/24. The root namespace gets only
    the management bridge, whose ports are isolated from each other.
  - A host whose init died, or that lost a link or address, is recreated whole.
    The address plan is validated before anything changes, including overlap with
    the controller's own routes.
options:
  lab:
    description: The lab plan, as the inventory variable C(podnet_lab) holds it.
    type: dict
    required: true
  nodes:
    description: One entry per node of the inventory group C(nodes).
    type: list
    elements: dict
    required: true
    suboptions:
      name: {description: 'Inventory name, also the hostname.', type: str, required: true}
      mgmt_ip: {description: Management address (the host's C(ansible_host))., type: str, required: true}
      rack: {description: Rack of the node (C(podnet_rack)); the first rack if omitted., type: str}
      underlay_ip: {description: Underlay address (C(podnet_underlay_ip))., type: str, required: true}
      kind:
        description:
          - C(netns) (the default), a node made of namespaces, or C(qemu), a VM booted
            from a Debian image the provider builds and caches under O(lab_dir)C(/images)
            (C(podnet_lab_kind)).
          - A qemu node's underlay NIC is a tap on its rack switch in the fabric namespace;
            it is managed over SSH on a port qemu forwards on 127.0.0.1 (C(ansible_host)
            must be 127.0.0.1 and O(nodes[].ssh_port) its C(ansible_port)).
        type: str
        choices: [netns, qemu]
        default: netns
      ssh_port: {description: "A qemu node's forwarded SSH port (C(ansible_port)).", type: int, default: 22}
  state:
    description: C(present) brings the lab up or repairs it; C(absent) removes all of it but the SSH keys.
    type: str
    choices: [present, absent]
    default: present
  lab_dir:
    description: Git-ignored project folder for keys, SSH control sockets and run files.
    type: path
    required: true
  init_program:
    description: Path of the C(podnet-lab-init) program.
    type: path
    required: true
  state_dir:
    description: Path of each node's private state directory, as the node sees it.
    type: path
    default: /var/lib/podnet
  private_dirs:
    description:
      - Paths each node has a private folder at, empty when the lab first makes it,
        as a VM has its own disk (besides O(state_dir)). A node's folders stay when
        it is recreated (a rebooted VM keeps its disk) and go with the lab.
      - The default gives each node its own CNI configuration and plugin folder, CNI
        state (host-local's addresses, the result cache) and podman's configuration
        and state (C(/run/containers) is private with C(/run)).
    type: list
    elements: path
    default: [/etc/cni/net.d, /opt/cni/bin, /var/lib/cni, /etc/containers, /var/lib/containers]
  outside_server:
    description:
      - Command line of the server the outside host runs (on every address), such
        as agnhost netexec, which reports the client address it sees.
    type: list
    elements: str
    default: []
  cluster_cidr:
    description: Pod network of the cluster; no lab subnet may overlap it.
    type: str
    default: 10.42.0.0/16
attributes:
  check_mode: {support: full}
  diff_mode: {support: full}
extends_documentation_fragment: [podnet.attributes]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Bring the lab up.
  podnet_lab:
    lab: "{{ podnet_lab }}"
    nodes:
      - {name: node1, mgmt_ip: 172.30.0.11, rack: rack1, underlay_ip: 10.11.1.11}
    lab_dir: "{{ podnet_root }}/.lab"
    init_program: "{{ role_path }}/files/podnet-lab-init"

- name: Tear the lab down.
  podnet_lab:
    lab: "{{ podnet_lab }}"
    nodes: "{{ podnet_lab_nodes }}"
    lab_dir: "{{ podnet_root }}/.lab"
    init_program: "{{ role_path }}/files/podnet-lab-init"
    state: absent
'''

RETURN = r'''
hosts:
  description: State of each lab host after the call (before it, in check mode).
  returned: always
  type: dict
  sample: {fabric: running, outside: running, node1: running}
actions:
  description: What was done (or would be, in check mode), as verb, target and reason.
  returned: always
  type: list
  elements: list
  sample: [[create, node2, not running]]
'''

import sys

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.core.reconcile import run_module
from ansible.module_utils.podnet.kernel.netlink import require_pyroute2
from ansible.module_utils.podnet.lab import inventory

PRIVATE_DIRS = ('/etc/cni/net.d', '/opt/cni/bin', '/var/lib/cni', '/etc/containers', '/var/lib/containers')
NODE_OPTIONS = dict(name=dict(type='str', required=True), mgmt_ip=dict(type='str', required=True),
                    rack=dict(type='str'), underlay_ip=dict(type='str', required=True),
                    kind=dict(type='str', choices=['netns', 'qemu'], default='netns'),
                    ssh_port=dict(type='int', default=22))


def reserved_networks(params, lab_name):
    from ansible.module_utils.podnet.lab.reconciler import controller_routes
    cluster = inventory._network(params['cluster_cidr'], 'cluster_cidr')
    return [('the cluster CIDR %s' % cluster, cluster)] + controller_routes(lab_name)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            lab=dict(type='dict', required=True),
            nodes=dict(type='list', elements='dict', required=True, options=NODE_OPTIONS),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            lab_dir=dict(type='path', required=True),
            init_program=dict(type='path', required=True),
            state_dir=dict(type='path', default='/var/lib/podnet'),
            private_dirs=dict(type='list', elements='path', default=list(PRIVATE_DIRS)),
            outside_server=dict(type='list', elements='str', default=[]),
            cluster_cidr=dict(type='str', default='10.42.0.0/16')),
        supports_check_mode=True)
    require_pyroute2(module)
    run_module(module, lab_of)


def lab_of(module):
    from ansible.module_utils.podnet.lab.reconciler import Lab, LabPaths
    p = module.params
    spec = inventory.parse(p['lab'], p['nodes'], reserved_networks(p, str(p['lab'].get('name'))))
    paths = LabPaths(p['lab_dir'], spec.name, p['init_program'], sys.executable, p['state_dir'],
                     p['outside_server'], p['private_dirs'])
    return Lab(spec, paths, module.run_command, p['cluster_cidr'], p['state'], module.check_mode)


if __name__ == '__main__':
    main()
