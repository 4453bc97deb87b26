#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
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
  - O(state=absent), the last step of a cluster reset, removes O(persist_file)
    and podnet's files in the state directory, its lock last, then the folder
    when nothing else is left in it (a mount point, as on lab nodes, is kept). Runtime sysctl values are
    left as they are; a reboot brings back the distribution's.
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
  state:
    description: C(absent) removes the persist file and the state directory.
extends_documentation_fragment: [podnet]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Enable forwarding and learn the underlay.
  podnet_node:
    underlay_ip: 10.11.1.11

- name: Same on a real VM, kept across reboots.
  podnet_node:
    persist_file: /etc/sysctl.d/90-podnet.conf

- name: Remove the persist file and the state directory (a cluster reset, after the other modules).
  podnet_node:
    persist_file: /etc/sysctl.d/90-podnet.conf
    state: absent
'''

RETURN = r'''
ansible_facts:
  description:
    - C(podnet_node) with the node's hostname and underlay, its pod CIDR and pods, and its
      machine's kernel (its boot id, which lab nodes share), its available memory in bytes and how
      many entries its neighbour table holds (gc_thresh3, which lab nodes share too), and its PID
      namespace (by which the controller tells a lab node's pods from other labs').
  returned: when O(state=present)
  type: dict
  sample: {podnet_node: {hostname: node1, underlay_ip: 10.11.1.11, underlay_ifname: eth0,
                         underlay_prefixlen: 24, underlay_mtu: 1500, pod_cidr: 10.42.0.0/24,
                         pods: [default/multi-container-pod],
                         kernel: 4b1c0e2a-8f0d-4c3e-9a57-2f1d7c5e6b10, memory_available: 22548578304,
                         neighbours_max: 1024, pid_namespace: 'pid:[4026532301]'}}
changed_sysctls:
  description: The parameters that were (or would be) changed, with their new values.
  returned: when O(state=present)
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
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.core.reconcile import NODE_STATE_OPTIONS, Action, run_module
from ansible.module_utils.podnet.core.statefile import read_text, remove_any, write_atomic
from ansible.module_utils.podnet.kernel import sysctl
from ansible.module_utils.podnet.kernel.netlink import require_pyroute2, underlay_facts
from ansible.module_utils.podnet.node.nodestate import clear_state, own_entries, read_pod_cidr, read_pod_records
from ansible.module_utils.podnet.plan import capacity


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
                 pods=sorted(read_pod_records(params['state_dir'])[0]), **capacity.read_machine())
    return {'sysctls': values, 'persist_file': read_text(params['persist_file']), 'facts': facts}


def read_absent(params):
    """What a reset removes: the persist file and the state directory."""
    from ansible.module_utils.podnet.pods.sandbox import is_mount_point
    return {'persist_file': read_text(params['persist_file']),
            'state_dir': own_entries(params['state_dir']),
            'mount_point': is_mount_point(params['state_dir'])}


def plan_absent(params, current):
    actions = []
    if current['persist_file'] is not None:
        actions.append(Action('remove_file', params['persist_file'], 'state absent'))
    entries = current['state_dir']
    if entries:
        actions.append(Action('remove_state', params['state_dir'], 'state absent: holds %s' % (
            ', '.join(entries))))
    return actions


def apply_absent(params, actions, current):
    if any(a.verb == 'remove_file' for a in actions):
        remove_any(params['persist_file'])
    if any(a.verb == 'remove_state' for a in actions):
        clear_state(params['state_dir'], keep_dir=current['mount_point'])


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
                           underlay_ip=dict(type='str'), **NODE_STATE_OPTIONS),
        supports_check_mode=True)
    require_pyroute2(module)
    p = module.params
    if p['state'] == 'absent':
        run_module(module, 'podnet_node', lambda: read_absent(p),
                   lambda current: plan_absent(p, current),
                   lambda actions, current: apply_absent(p, actions, current),
                   lambda current: current and {k: current[k] for k in ('persist_file', 'state_dir')
                                                if current[k] is not None},
                   lock_dir=p['state_dir'], absent=True)
        return  # run_module exits; this says so
    run_module(module, 'podnet_node', lambda: read(p), lambda current: plan(p, current),
               lambda actions, _: apply(p, actions), lambda current: show(p, current),
               lock_dir=p['state_dir'],
               result=lambda current, _: dict(
                   ansible_facts={'podnet_node': current['facts']},
                   changed_sysctls=sysctl.plan(current['sysctls'], p['sysctls'])))


if __name__ == '__main__':
    main()
