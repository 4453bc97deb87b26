#!/usr/bin/python
"""Ansible module: prepare a node's kernel for pods and report its network facts."""

DOCUMENTATION = r'''
---
module: podnet_node
short_description: Enable the pod network's kernel settings on a node and gather its facts
description:
  - Sets the sysctls the pod network needs (forwarding above all) in the node's
    own network namespace. On a lab node that namespace is the node's, never the
    controller's.
  - Optionally writes them to a sysctl.d file so that a real VM keeps them after a
    reboot. Lab nodes share the controller's /etc, so the lab leaves this off.
  - Returns the node's underlay facts (address, interface, MTU) as C(podnet_node).
options:
  sysctls:
    description: Kernel parameters and the values they must have.
    type: dict
    default: {net.ipv4.ip_forward: 1}
  persist_file:
    description: A sysctl.d file to keep the values in; omit to set them only at runtime.
    type: path
  underlay_ip:
    description: The node's underlay address; when omitted, the source address of its default route.
    type: str
  state_dir:
    description: The node's state directory, where the pod CIDR it was given is kept.
    type: path
    default: /var/lib/podnet
attributes:
  check_mode: {support: full}
  diff_mode: {support: full}
author: podnet developers
'''

EXAMPLES = r'''
- name: Enable forwarding and learn the underlay.
  podnet_node:
    underlay_ip: 10.11.1.11

- name: Same on a real VM, kept across reboots.
  podnet_node:
    persist_file: /etc/sysctl.d/90-podnet.conf
'''

RETURN = r'''
ansible_facts:
  description: C(podnet_node) with the node's hostname and underlay.
  returned: always
  type: dict
  sample: {podnet_node: {hostname: node1, underlay_ip: 10.11.1.11, underlay_ifname: eth0,
                         underlay_prefixlen: 24, underlay_mtu: 1500, pod_cidr: 10.42.0.0/24,
                         pods: [default/multi-container-pod]}}
changed_sysctls:
  description: The parameters that were (or would be) changed, with their new values.
  returned: always
  type: dict
  sample: {net.ipv4.ip_forward: '1'}
'''

import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet import sysctl
from ansible.module_utils.podnet.nodestate import read_pod_cidr, read_pod_records
from ansible.module_utils.podnet.netlink import require_pyroute2, underlay_facts


def persist(module, path, wanted):
    text = sysctl.persist_text(wanted)
    try:
        with open(path) as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    if not module.check_mode:
        tmp = path + '.podnet'
        with open(tmp, 'w') as f:
            f.write(text)
        module.atomic_move(tmp, path)
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(sysctls=dict(type='dict', default={'net.ipv4.ip_forward': 1}),
                           persist_file=dict(type='path'),
                           underlay_ip=dict(type='str'),
                           state_dir=dict(type='path', default='/var/lib/podnet')),
        supports_check_mode=True)
    require_pyroute2(module)
    wanted = module.params['sysctls']
    try:
        current = sysctl.read(wanted)
    except KeyError as exc:
        hint = ' (load br_netfilter: modprobe br_netfilter; bin/bootstrap does on a lab machine)' \
            if exc.args[0].startswith('net.bridge.') else ''
        module.fail_json(msg='sysctls: %s does not exist on this kernel%s' % (exc.args[0], hint))
    changes = sysctl.plan(current, wanted)
    if changes and not module.check_mode:
        sysctl.write(changes)
    file_changed = bool(module.params['persist_file']) and persist(
        module, module.params['persist_file'], wanted)
    try:
        facts = underlay_facts(module.params['underlay_ip'])
    except LookupError as exc:
        module.fail_json(msg='underlay_ip: %s' % exc)
    facts['hostname'] = socket.gethostname()
    facts['pod_cidr'] = read_pod_cidr(module.params['state_dir'])
    facts['pods'] = sorted(read_pod_records(module.params['state_dir']))
    module.exit_json(
        changed=bool(changes) or file_changed, changed_sysctls=changes,
        ansible_facts={'podnet_node': facts},
        diff=dict(before={k: current[k] for k in changes}, after=changes))


if __name__ == '__main__':
    main()
