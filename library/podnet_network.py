#!/usr/bin/python
"""Ansible module: a node's pod bridge and masquerade table."""

DOCUMENTATION = r'''
---
module: podnet_network
short_description: Manage a node's pod network (cni0 and egress masquerade)
description:
  - Keeps the C(cni0) bridge with the gateway (first address) of the node's pod
    CIDR and the pods' MTU, and an nftables table C(ip podnet-nat) that
    masquerades pod traffic whose destination is outside the cluster CIDR, and
    nothing else. Records the pod CIDR in the node's state directory, where the
    next run finds it, so a node keeps its CIDR when others are added.
options:
  pod_cidr: {description: This node's pod CIDR., type: str, required: true}
  cluster_cidr: {description: The cluster's pod network., type: str, default: 10.42.0.0/16}
  mtu: {description: MTU of cni0 (the pods' MTU)., type: int, required: true}
  state:
    description: C(absent) removes the bridge, the table and the recorded CIDR.
    type: str
    choices: [present, absent]
    default: present
  state_dir: {description: The node's state directory., type: path, default: /var/lib/podnet}
attributes:
  check_mode: {support: full}
  diff_mode: {support: full}
author: podnet developers
'''

EXAMPLES = r'''
- name: Give the node its pod bridge and egress masquerade.
  podnet_network:
    pod_cidr: 10.42.1.0/24
    mtu: 1450
'''

RETURN = r'''
actions:
  description: What was changed (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [bridge, nat, save_pod_cidr]
gateway:
  description: The gateway address on cni0.
  returned: always
  type: str
  sample: 10.42.1.1/24
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.errors import PodnetError
from ansible.module_utils.podnet.netlink import NetlinkError, require_pyroute2


def main():
    module = AnsibleModule(
        argument_spec=dict(pod_cidr=dict(type='str', required=True),
                           cluster_cidr=dict(type='str', default='10.42.0.0/16'),
                           mtu=dict(type='int', required=True),
                           state=dict(type='str', choices=['present', 'absent'], default='present'),
                           state_dir=dict(type='path', default='/var/lib/podnet')),
        supports_check_mode=True)
    require_pyroute2(module)
    from ansible.module_utils.podnet.network import NodeNetwork
    p = module.params
    try:
        network = NodeNetwork(module.run_command, p['state_dir'], p['pod_cidr'],
                              p['cluster_cidr'], p['mtu'])
        current = network.read_current()
        actions = network.plan(current, p['state'])
        if actions and not module.check_mode:
            network.apply(actions)
    except PodnetError as exc:
        module.fail_json(msg=str(exc), subject=exc.subject)
    except (NetlinkError, OSError) as exc:
        module.fail_json(msg='kernel refused a change: %s' % (exc,))
    except ValueError as exc:
        module.fail_json(msg='pod_cidr: %s' % exc)
    after = network.wanted() if p['state'] == 'present' else {}
    module.exit_json(changed=bool(actions), actions=actions, gateway=network.gateway,
                     diff=dict(before={k: current[k] for k in ('bridge', 'pod_cidr')}, after=after))


if __name__ == '__main__':
    main()
