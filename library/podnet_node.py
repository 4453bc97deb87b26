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
    description: The node's state directory, where the pod CIDR it was given and the node's lock are kept.
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
actions:
  description: Changes made (or due, in check mode) as verb, target and reason.
  returned: always
  type: list
  elements: list
  sample: [[set_sysctl, net.ipv4.ip_forward, "0, want 1"]]
'''

import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet import sysctl
from ansible.module_utils.podnet.errors import SpecError
from ansible.module_utils.podnet.nodestate import read_pod_cidr, read_pod_records
from ansible.module_utils.podnet.netlink import require_pyroute2, underlay_facts
from ansible.module_utils.podnet.reconcile import Action, run_module
from ansible.module_utils.podnet.statefile import write_atomic


def read(params):
    """The sysctls, the persist file and the node's facts, read once."""
    try:
        values = sysctl.read(params['sysctls'])
    except KeyError as exc:
        hint = ' (load br_netfilter: modprobe br_netfilter; bin/bootstrap does on a lab machine)' \
            if exc.args[0].startswith('net.bridge.') else ''
        raise SpecError('sysctls', '%s does not exist on this kernel%s' % (exc.args[0], hint))
    try:
        facts = underlay_facts(params['underlay_ip'])
    except LookupError as exc:
        raise SpecError('underlay_ip', str(exc))
    facts.update(hostname=socket.gethostname(), pod_cidr=read_pod_cidr(params['state_dir']),
                 pods=sorted(read_pod_records(params['state_dir'])))
    return {'sysctls': values, 'persist_file': _read_text(params['persist_file']), 'facts': facts}


def _read_text(path):
    if not path:
        return None
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def plan(params, current):
    actions = [Action('set_sysctl', key, '%s, want %s' % (current['sysctls'][key], value))
               for key, value in sorted(sysctl.plan(current['sysctls'], params['sysctls']).items())]
    path = params['persist_file']
    if path and current['persist_file'] != sysctl.persist_text(params['sysctls']):
        actions.append(Action('write_file', path, 'missing' if current['persist_file'] is None
                              else 'its values differ'))
    return actions


def apply(params, actions):
    changes = {a.target: str(params['sysctls'][a.target]) for a in actions if a.verb == 'set_sysctl'}
    sysctl.write(changes)
    if any(a.verb == 'write_file' for a in actions):
        write_atomic(params['persist_file'], sysctl.persist_text(params['sysctls']))


def show(params, current):
    """Values as the kernel prints them, the file as its lines."""
    if current is None:
        text = sysctl.persist_text(params['sysctls']) if params['persist_file'] else None
        values = {k: str(v) for k, v in params['sysctls'].items()}
    else:
        text, values = current['persist_file'], current['sysctls']
    return {'sysctls': values, 'persist_file': text and text.splitlines()}


def main():
    module = AnsibleModule(
        argument_spec=dict(sysctls=dict(type='dict', default={'net.ipv4.ip_forward': 1}),
                           persist_file=dict(type='path'),
                           underlay_ip=dict(type='str'),
                           state_dir=dict(type='path', default='/var/lib/podnet')),
        supports_check_mode=True)
    require_pyroute2(module)
    p = module.params
    run_module(module, 'podnet_node', lambda: read(p), lambda current: plan(p, current),
               lambda actions, _: apply(p, actions), lambda current: show(p, current),
               lock_dir=p['state_dir'],
               result=lambda current: dict(
                   ansible_facts={'podnet_node': current['facts']},
                   changed_sysctls=sysctl.plan(current['sysctls'], p['sysctls'])))


if __name__ == '__main__':
    main()
