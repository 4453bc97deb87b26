#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: the routes between nodes' pod networks (vxlan or host-gw)."""

DOCUMENTATION = r'''
---
module: podnet_backend
short_description: Connect this node's pod network to every other node's
description:
  - C(vxlan) (default, as flannel in k3s) keeps a VXLAN device C(flannel.1)
    (VNI 1, UDP 8472, MTU underlay - 50, no learning) with a static FDB entry,
    a permanent neighbour and an onlink route per remote node.
  - C(host-gw) keeps a route per remote pod CIDR via that node's underlay
    address, and refuses nodes that are not on one L2 segment.
  - With C(vxlan), the nftables table C(inet podnet-vxlan) lets only the peers' underlay
    addresses reach UDP 8472, over the underlay, and drops a pod's datagram to UDP 8472
    unless it goes to a pod (VXLAN would otherwise carry a pod's forged frame past
    isolation and NetworkPolicy).
  - A table podnet does not own that would drop VXLAN between this node and a peer (or,
    with C(host-gw), pod traffic over the underlay) is named in a warning, with its rule;
    podnet never changes such a table.
  - Switching backends removes the other backend's device, routes and table. Routes
    podnet owns carry protocol 200 and are the only ones it touches.
options:
  backend:
    description: The backend.
    type: str
    choices: [vxlan, host-gw]
    default: vxlan
  node:
    description: This node; required with O(state=present).
    type: dict
    suboptions:
      name: {description: Its inventory name., type: str, required: true}
      underlay_ip: {description: Its underlay address., type: str, required: true}
      underlay_prefixlen: {description: Prefix length of its underlay subnet., type: int, required: true}
      underlay_ifname: {description: Its underlay interface., type: str, required: true}
      underlay_mtu: {description: MTU of its underlay interface., type: int, required: true}
      pod_cidr: {description: Its pod CIDR., type: str, required: true}
      vtep_mac: {description: MAC address of its C(flannel.1)., type: str, required: true}
  peers:
    description: Every other node; required with O(state=present).
    type: list
    elements: dict
    suboptions:
      name: {description: Its inventory name., type: str, required: true}
      underlay_ip: {description: Its underlay address., type: str, required: true}
      pod_cidr: {description: Its pod CIDR., type: str, required: true}
      vtep_mac: {description: MAC address of its C(flannel.1)., type: str, required: true}
  state:
    description: C(absent) removes the backend's device, routes and table.
extends_documentation_fragment: [podnet]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Reach the other nodes' pods over VXLAN.
  podnet_backend:
    backend: vxlan
    node: {name: node1, underlay_ip: 10.11.1.11, underlay_prefixlen: 24, underlay_ifname: eth0,
           underlay_mtu: 1500, pod_cidr: 10.42.0.0/24, vtep_mac: "02:aa:bb:cc:dd:01"}
    peers:
      - {name: node2, underlay_ip: 10.11.1.12, pod_cidr: 10.42.1.0/24, vtep_mac: "02:aa:bb:cc:dd:02"}

- name: Remove the backend (a cluster reset).
  podnet_backend:
    state: absent
'''

RETURN = r'''
actions:
  description: Changes made (or due, in check mode) as verb, target and reason.
  returned: always
  type: list
  elements: list
  sample:
    - [create_vtep, flannel.1, missing]
    - [set_routes, 10.42.1.0/24, "missing, want via 10.42.1.0 dev flannel.1 onlink"]
foreign_drops:
  description: The traffic to and from the peers that a table podnet does not own would drop,
    each with the rule that drops it (also given as warnings).
  returned: with O(state=present)
  type: list
  elements: str
  sample:
    - "VXLAN from node2 (10.11.1.12): dropped by inet evil chain input rule 0: udp dport 8472 drop"
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.core.reconcile import NODE_STATE_OPTIONS, run_module
from ansible.module_utils.podnet.kernel.netlink import require_pyroute2

NODE = dict(name=dict(type='str', required=True), underlay_ip=dict(type='str', required=True),
            underlay_prefixlen=dict(type='int', required=True),
            underlay_ifname=dict(type='str', required=True),
            underlay_mtu=dict(type='int', required=True), pod_cidr=dict(type='str', required=True),
            vtep_mac=dict(type='str', required=True))
PEER = {k: NODE[k] for k in ('name', 'underlay_ip', 'pod_cidr', 'vtep_mac')}


def main():
    module = AnsibleModule(
        argument_spec=dict(backend=dict(type='str', choices=['vxlan', 'host-gw'], default='vxlan'),
                           node=dict(type='dict', options=NODE),
                           peers=dict(type='list', elements='dict', options=PEER), **NODE_STATE_OPTIONS),
        required_if=[('state', 'present', ('node', 'peers'))],
        supports_check_mode=True)
    require_pyroute2(module)
    run_module(module, backend_of)


def backend_of(module):
    from ansible.module_utils.podnet.node.backend import Backend
    p = module.params
    return Backend(module.run_command, p['backend'], p['node'], p['peers'], p['state_dir'],
                   absent=p['state'] == 'absent')


if __name__ == '__main__':
    main()
