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
from ansible.module_utils.podnet.core.reconcile import NODE_STATE_OPTIONS, Action, Reconciler, run_module
from ansible.module_utils.podnet.core.statefile import read_text, remove_any, write_atomic
from ansible.module_utils.podnet.kernel import sysctl
from ansible.module_utils.podnet.kernel.netlink import require_pyroute2, underlay_facts
from ansible.module_utils.podnet.node.nodestate import clear_state, own_entries, read_pod_cidr, read_pod_records
from ansible.module_utils.podnet.plan import capacity


class NodeBase(Reconciler):
    """The node's sysctls and their persist file; its facts as the result."""
    subject = 'podnet_node'

    def __init__(self, params):
        self.params, self.lock_dir = params, params['state_dir']

    def read(self):
        """The sysctls, the persist file and the node's facts, read once."""
        params = self.params
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

    def plan(self, current):
        wanted = self.params['sysctls']
        actions = [Action('set_sysctl', key, '%s, want %s' % (current['sysctls'][key], value))
                   for key, value in sorted(sysctl.plan(current['sysctls'], wanted).items())]
        path = self.params['persist_file']
        if path and current['persist_file'] != sysctl.persist_text(wanted):
            actions.append(Action('write_file', path, 'missing' if current['persist_file'] is None
                                  else 'its values differ'))
        return actions

    def wanted(self, current):
        wanted = self.params['sysctls']
        return {'sysctls': {k: str(v) for k, v in wanted.items()},
                'persist_file': sysctl.persist_text(wanted) if self.params['persist_file'] else None}

    def show(self, state):
        """Values as the kernel prints them, the file as its lines."""
        text = state['persist_file']
        return {'sysctls': state['sysctls'], 'persist_file': text and text.splitlines()}

    def do_set_sysctl(self, action, _current):
        sysctl.write({action.target: str(self.params['sysctls'][action.target])})

    def do_write_file(self, action, _current):
        write_atomic(action.target, sysctl.persist_text(self.params['sysctls']))

    def result(self, current, actions):
        return dict(ansible_facts={'podnet_node': current['facts']},
                    changed_sysctls=sysctl.plan(current['sysctls'], self.params['sysctls']))


class NodeReset(Reconciler):
    """What a reset removes: the persist file and the state directory."""
    subject = 'podnet_node'
    absent = True

    def __init__(self, params):
        self.params, self.lock_dir = params, params['state_dir']

    def read(self):
        from ansible.module_utils.podnet.pods.sandbox import is_mount_point
        params = self.params
        return {'persist_file': read_text(params['persist_file']),
                'state_dir': own_entries(params['state_dir']),
                'mount_point': is_mount_point(params['state_dir'])}

    def plan(self, current):
        actions = []
        if current['persist_file'] is not None:
            actions.append(Action('remove_file', self.params['persist_file'], 'state absent'))
        if current['state_dir']:
            actions.append(Action('remove_state', self.params['state_dir'], 'state absent: holds %s' % (
                ', '.join(current['state_dir']))))
        return actions

    def wanted(self, current):
        return {}

    def show(self, state):
        return {k: state[k] for k in ('persist_file', 'state_dir') if state.get(k) is not None}

    def do_remove_file(self, action, _current):
        remove_any(action.target)

    def do_remove_state(self, action, current):
        clear_state(action.target, keep_dir=current['mount_point'])


def main():
    module = AnsibleModule(
        argument_spec=dict(sysctls=dict(type='dict', default={'net.ipv4.ip_forward': 1}),
                           persist_file=dict(type='path'),
                           underlay_ip=dict(type='str'), **NODE_STATE_OPTIONS),
        supports_check_mode=True)
    require_pyroute2(module)
    run_module(module, node_of)


def node_of(module):
    return (NodeReset if module.params['state'] == 'absent' else NodeBase)(module.params)


if __name__ == '__main__':
    main()
