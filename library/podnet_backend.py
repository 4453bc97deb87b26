#!/usr/bin/python
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
  - Switching backends removes the other backend's device and routes. Routes
    podnet owns carry protocol 200 and are the only ones it touches.
options:
  backend:
    description: The backend.
    type: str
    choices: [vxlan, host-gw]
    default: vxlan
  node:
    description: This node, with C(name), C(underlay_ip), C(underlay_prefixlen),
      C(underlay_ifname), C(underlay_mtu), C(pod_cidr) and C(vtep_mac).
    type: dict
    required: true
  peers:
    description: Every other node, with C(name), C(underlay_ip), C(pod_cidr) and C(vtep_mac).
    type: list
    elements: dict
    required: true
attributes:
  check_mode: {support: full}
  diff_mode: {support: full}
author: podnet developers
'''

EXAMPLES = r'''
- name: Reach the other nodes' pods over VXLAN.
  podnet_backend:
    backend: vxlan
    node: {name: node1, underlay_ip: 10.11.1.11, underlay_prefixlen: 24, underlay_ifname: eth0,
           underlay_mtu: 1500, pod_cidr: 10.42.0.0/24, vtep_mac: "02:aa:bb:cc:dd:01"}
    peers:
      - {name: node2, underlay_ip: 10.11.1.12, pod_cidr: 10.42.1.0/24, vtep_mac: "02:aa:bb:cc:dd:02"}
'''

RETURN = r'''
actions:
  description: Changes made (or due, in check mode) as verb and target.
  returned: always
  type: list
  elements: list
  sample: [[create_vtep, flannel.1], [set_routes, 10.42.1.0/24]]
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.errors import PodnetError
from ansible.module_utils.podnet.netlink import NetlinkError, require_pyroute2


def main():
    module = AnsibleModule(
        argument_spec=dict(backend=dict(type='str', choices=['vxlan', 'host-gw'], default='vxlan'),
                           node=dict(type='dict', required=True),
                           peers=dict(type='list', elements='dict', required=True)),
        supports_check_mode=True)
    require_pyroute2(module)
    from ansible.module_utils.podnet import backend
    p = module.params
    try:
        wanted = backend.wanted_state(p['backend'], p['node'], p['peers'])
        current = backend.read_state()
        actions = backend.plan(current, wanted)
        if actions and not module.check_mode:
            backend.apply(actions, wanted, p['node'])
    except PodnetError as exc:
        module.fail_json(msg=str(exc), subject=exc.subject)
    except (NetlinkError, OSError) as exc:
        module.fail_json(msg='kernel refused a change: %s' % (exc,))
    module.exit_json(changed=bool(actions), actions=[list(a) for a in actions],
                     diff=dict(before=_jsonable(current), after=_jsonable(wanted)))


def _jsonable(state):
    return {k: ({str(a): list(b) if isinstance(b, tuple) else b for a, b in v.items()}
                if isinstance(v, dict) and k != 'vtep' else v) for k, v in state.items()}


if __name__ == '__main__':
    main()
