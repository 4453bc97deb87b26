#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: a node's pod bridge, masquerade and isolation tables."""

DOCUMENTATION = r'''
---
module: podnet_network
short_description: Manage a node's pod network (cni0, egress masquerade, isolation from mgmt)
description:
  - Keeps the C(cni0) bridge with the gateway (first address) of the node's pod
    CIDR and the pods' MTU, and an nftables table C(ip podnet-nat) that
    masquerades pod traffic whose destination is outside the cluster CIDR, and
    nothing else. Records the pod CIDR in the node's state directory, where the
    next run finds it, so a node keeps its CIDR when others are added.
  - Keeps pods off the management network with a table C(inet podnet-isolation).
    The management interface is the one holding O(mgmt_address). When it is
    not the underlay (the lab's C(mgmt0)), traffic from pods (source in the
    cluster CIDR, or in from C(cni0)) is dropped when it would be forwarded out
    of it or to its subnet, and pod traffic to the node's own management
    addresses is dropped on input. When it is the underlay too (a VM with one
    NIC), its subnet holds the other nodes and stays open.
  - In both cases pod traffic to the controller (O(controller_addresses)) is
    dropped. A pod keeps reaching its own node on C(cni0) and the underlay.
options:
  pod_cidr: {description: This node's pod CIDR; required with O(state=present)., type: str}
  cluster_cidr: {description: The cluster's pod network., type: str, default: 10.42.0.0/16}
  mtu: {description: MTU of cni0 (the pods' MTU); required with O(state=present)., type: int}
  mgmt_address:
    description:
      - The address Ansible reaches the node on (C(ansible_host)); the interface
        holding it is the management interface. Omitted, or held by no
        interface (a name, a forwarded port), only the controller is cut off.
    type: str
  underlay_ip:
    description: The node's underlay address; a management interface that holds it is the underlay too.
    type: str
  controller_addresses:
    description:
      - The controller's addresses, which pods must not reach. Omitted, the
        client address of the SSH session the module runs in
        (C(SSH_CONNECTION), else C(SSH_CLIENT)); none under a local
        connection, or with C(become) through a sudo that resets them. The
        node's own addresses are never blocked this way. IPv6 addresses are
        left out, pods have no IPv6 route off their node.
    type: list
    elements: str
  subnet_env:
    description:
      - Where to write the node's C(subnet.env) as flanneld writes it
        (C(FLANNEL_NETWORK), C(FLANNEL_SUBNET) the gateway with the prefix
        length, C(FLANNEL_MTU), C(FLANNEL_IPMASQ)), which flannel's CNI plugin
        reads. With O(state=absent), the file is removed, and its folder when
        nothing else is left in it. Omitted, no such file is kept.
    type: path
  state:
    description: C(absent) removes the bridge, both tables, the recorded CIDR and O(subnet_env); needs no other option.
extends_documentation_fragment: [podnet]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Give the node its pod bridge, egress masquerade and isolation from mgmt.
  podnet_network:
    pod_cidr: 10.42.1.0/24
    mtu: 1450
    mgmt_address: "{{ ansible_host }}"
    underlay_ip: 10.11.1.12
    subnet_env: /run/flannel/subnet.env

- name: Remove them (a cluster reset).
  podnet_network:
    subnet_env: /run/flannel/subnet.env
    state: absent
'''

RETURN = r'''
actions:
  description: What was changed (or would be, in check mode), as verb, target and reason.
  returned: always
  type: list
  elements: list
  sample: [[set_table, inet podnet-isolation, missing]]
gateway:
  description: The gateway address on cni0.
  returned: always
  type: str
  sample: 10.42.1.1/24
mgmt_interface:
  description: The management interface whose network pods are kept off, or null.
  returned: always
  type: str
  sample: mgmt0
controller_addresses:
  description: The controller addresses pods are kept off.
  returned: always
  type: list
  elements: str
  sample: [172.30.1.1]
subnet_env:
  description: What the node's subnet.env holds (or would, in check mode), by variable; null with O(state=absent).
  returned: always
  type: dict
  sample: {FLANNEL_NETWORK: 10.42.0.0/16, FLANNEL_SUBNET: 10.42.1.1/24, FLANNEL_MTU: '1450', FLANNEL_IPMASQ: 'true'}
foreign_drops:
  description:
    - The pod flows of this node (between two of its pods, from and to a pod of another node) that
      a table podnet does not own would drop, with the rule, as playbooks/explain.yml names it.
      Each is also a warning; podnet never changes such a table.
  returned: always
  type: list
  elements: str
  sample: ["pod 10.42.0.2 to pod 10.42.1.2: dropped by inet evil chain drops rule 0: ip daddr 10.42.1.0/24 drop"]
'''

import ipaddress
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.core.reconcile import NODE_STATE_OPTIONS, run_module
from ansible.module_utils.podnet.kernel.netlink import require_pyroute2


def spec_of(params, environ):
    """The module's wish; SpecError names the option at fault."""
    from ansible.module_utils.podnet.node.network import NetworkSpec, ssh_client_address
    controllers = params['controller_addresses']
    if controllers is None:
        controllers = [a for a in [ssh_client_address(environ)] if a]
    for option in ('pod_cidr', 'cluster_cidr'):
        if params[option] is None:
            continue
        try:
            ipaddress.IPv4Network(params[option])
        except ValueError as exc:
            raise SpecError(option, str(exc)) from None
    try:
        controllers = [str(ipaddress.ip_address(a)) for a in controllers]
    except ValueError as exc:
        raise SpecError('controller_addresses', str(exc)) from None
    return NetworkSpec(params['state_dir'], params['pod_cidr'], params['cluster_cidr'],
                       params['mtu'], params['mgmt_address'], params['underlay_ip'], controllers,
                       params['subnet_env'])


def main():
    module = AnsibleModule(
        argument_spec=dict(pod_cidr=dict(type='str'),
                           cluster_cidr=dict(type='str', default='10.42.0.0/16'),
                           mtu=dict(type='int'),
                           mgmt_address=dict(type='str'),
                           underlay_ip=dict(type='str'),
                           controller_addresses=dict(type='list', elements='str'),
                           subnet_env=dict(type='path'), **NODE_STATE_OPTIONS),
        required_if=[('state', 'present', ('pod_cidr', 'mtu'))],
        supports_check_mode=True)
    require_pyroute2(module)
    run_module(module, network_of)


def network_of(module):
    from ansible.module_utils.podnet.node.network import NodeNetwork
    p = module.params
    return NodeNetwork(module.run_command, spec_of(p, os.environ), p['state'])


if __name__ == '__main__':
    main()
