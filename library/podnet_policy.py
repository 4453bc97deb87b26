#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: enforce NetworkPolicy for the pods of one node."""

DOCUMENTATION = r'''
---
module: podnet_policy
short_description: Compile NetworkPolicy (networking.k8s.io/v1) to nftables on a node
description:
  - Compiles every policy for the pods of the node it runs on into one nftables
    table, C(ip podnet-policy), applied as one atomic transaction. Ingress is
    enforced for this node's pods as destinations, egress for them as sources,
    on the forward hook that routed traffic and, through br_netfilter, traffic
    bridged on C(cni0) between pods of one node cross. Replies of allowed
    connections pass (conntrack); denied packets are dropped, never rejected, so
    a denied connection times out.
  - Traffic between a pod and its own node never crosses the forward hook, so
    it is always allowed, as Kubernetes specifies.
  - Applying the same policies again changes nothing; removing a policy
    restores the traffic it blocked. The diff shows the table in C(nft list
    table) syntax, one line per rule.
  - Next to the table it keeps what the table was compiled from (the policies,
    the running pods and the namespaces' labels) in C(policy-source.json) in the
    state directory. podnet_facts returns it, so the probe and the path explainer
    judge traffic by the policies the node enforces and name the policy and rule
    that decide.
  - O(state=absent) removes the table and that record; it needs none of the
    other options.
options:
  cluster:
    description:
      - The cluster as the policies see it, as the cluster plan gives it in C(policy_cluster).
        C(policies) holds the NetworkPolicy objects as in manifests; C(pods) every pod with
        C(namespace), C(name), C(node), C(labels) and C(ports) (which resolve named ports);
        C(namespaces) the labels of every namespace.
      - A dict, or the same as JSON text, which is how the policy role passes it (podnet_cluster's
        C(nodes[<node>].pods_json) says why).
    type: raw
  running:
    description:
      - The IP of every running pod by namespace/name, as the nodes' podnet_pods results give them
        (C(ips)); a dict, or the same as JSON text.
    type: raw
  pending:
    description:
      - Pods that get a new address in this run, which check mode cannot know yet (the nodes'
        podnet_pods results give them as C(pending)). In check mode, a table that refers to any of
        them is reported as changing, naming them; a real run has none.
    type: list
    elements: str
    default: []
  node:
    description: This node's inventory name.
    type: str
  state:
    description:
      - C(present) needs O(cluster), O(running) and O(node); C(absent) removes the table.
extends_documentation_fragment: [podnet]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Enforce the cluster's policies for this node's pods.
  podnet_policy:
    cluster: "{{ podnet_plan.policy_cluster }}"
    running: {x/a: 10.42.0.2, x/b: 10.42.1.2}
    node: "{{ inventory_hostname }}"

- name: The same, the cluster given as a dict.
  podnet_policy:
    cluster: {policies: [], pods: [{namespace: x, name: a, node: node1, labels: {app: a}}], namespaces: {x: {}}}
    running: {x/a: 10.42.0.2}
    node: node1

- name: Remove the policy table (a cluster reset).
  podnet_policy:
    state: absent
'''

RETURN = r'''
actions:
  description: The change made (or due, in check mode) as verb, target and reason.
  returned: always
  type: list
  elements: list
  sample: [[set_table, ip podnet-policy, "4 rules, want 6"],
           [record_source, /var/lib/podnet/policy-source.json, the policies or pods changed]]
rules:
  description: Number of rules in the node's policy table.
  returned: always
  type: int
  sample: 4
isolated:
  description: This node's pods some policy isolates, by direction.
  returned: always
  type: dict
  sample: {Ingress: [x/a], Egress: []}
'''

import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.core.reconcile import NODE_STATE_OPTIONS, Action, Reconciler, from_text, run_module
from ansible.module_utils.podnet.core.statefile import is_unreadable, read_text, remove_any, write_atomic
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.policy import netpol, netpol_nft, policy_source

POD_KEYS = ('namespace', 'name', 'node')
CLUSTER_KEYS = ('policies', 'pods', 'namespaces')
TABLE = '%s %s' % (netpol_nft.FAMILY, netpol_nft.TABLE)


def cluster_pods(pods, running):
    """Running pods with their IP and container ports, as the compiler takes them."""
    found = []
    for index, pod in enumerate(pods):
        missing = [k for k in POD_KEYS if k not in pod]
        if missing:
            raise SpecError('pods[%d]' % index, 'missing %s' % ', '.join(missing))
        key = '%s/%s' % (pod['namespace'], pod['name'])
        if running.get(key):
            found.append({'namespace': pod['namespace'], 'name': pod['name'], 'node': pod['node'],
                          'labels': pod.get('labels') or {}, 'ip': running[key],
                          'ports': pod.get('ports') or []})
    return found


NEW_ADDRESS = '0.0.0.0'  # what check mode puts for an address the real run allocates


def following(p, chains, rules, source):
    """In check mode: [Action] when a pod gets a new address in the real
    run (created or recreated on any node) and this node's table refers to
    it, or the record of what the table was compiled from (which names
    every pod's address) does: the real run changes them here too, though
    no rule can say to what yet."""
    pending = sorted(set(p['pending']))
    if not pending:
        return []
    running = dict(from_text('running', p['running'], dict), **{key: NEW_ADDRESS for key in pending})
    new_chains, new_rules, _, new_source = compile_for(dict(p, running=running))
    if (new_chains, new_rules) != (chains, rules):
        follows = 'this table follows'
    elif new_source != source:
        follows = 'the record of what this table enforces follows (%s)' % policy_source.FILE
    else:
        return []
    return [Action('follow', TABLE, '%s get%s a new address in the real run: %s' % (
        ', '.join(pending), 's' if len(pending) == 1 else '', follows))]


class NodePolicy(Reconciler):
    """This node's policy table and the record of what it was compiled from.
    compiled: (chains, rules, isolated, source) as compile_for() gives
    them, None with state absent; follows: the check-mode actions of
    following()."""
    subject = 'podnet_policy'

    def __init__(self, run, state_dir, compiled, follows=()):
        self.run, self.lock_dir, self.absent = run, state_dir, compiled is None
        self.chains, self.rules, self.isolated, self.source = compiled or ([], [], {}, None)
        self.table = None if self.absent else (self.chains, self.rules)
        self.path = policy_source.path(state_dir)
        self.follows = list(follows)

    def read(self):
        return {'table': nft.read_table(self.run, netpol_nft.FAMILY, netpol_nft.TABLE),
                'source': read_text(self.path)}

    def plan(self, current):
        return (plan(current['table'], self.table) + plan_source(current['source'], self.source, self.path)
                + (self.follows if current['table'] else []))

    def wanted(self, current):
        return {'table': self.table}

    def show(self, state):
        """The table as the diff shows it, in `nft list table` syntax."""
        return {TABLE: nft.describe(*state['table']) if state['table'] else None}

    def do_set_table(self, _action, _current):
        nft.apply(self.run, nft.table_commands(netpol_nft.FAMILY, netpol_nft.TABLE, self.chains, self.rules),
                  TABLE)

    def do_delete_table(self, _action, _current):
        nft.apply(self.run, nft.delete_commands(netpol_nft.FAMILY, netpol_nft.TABLE), TABLE)

    def do_record_source(self, _action, _current):
        write_atomic(self.path, self.source)

    def do_forget_source(self, _action, _current):
        remove_any(self.path)

    def result(self, current, actions):
        return dict(rules=len(self.rules), isolated=self.isolated)


def plan(current, wanted):
    """The table to current as wanted (chains, rules); None: no table."""
    if wanted is None:
        return nft.plan_delete(TABLE, current)
    return nft.plan_table(TABLE, current, *wanted)


def cluster_of(value):
    cluster = from_text('cluster', value, dict)
    missing = [k for k in CLUSTER_KEYS if k not in cluster]
    if missing:
        raise SpecError('cluster', 'missing %s' % ', '.join(missing))
    return cluster


def compile_for(p):
    """(chains, rules, isolated, source) of this node's table; source is
    what it was compiled from, as the node records it."""
    cluster = cluster_of(p['cluster'])
    policies = [netpol.parse_policy(raw) for raw in cluster['policies']]
    everyone = cluster_pods(cluster['pods'], from_text('running', p['running'], dict))
    local = [pod for pod in everyone if pod['node'] == p['node']]
    chains, rules = netpol_nft.compile_node(local, everyone, cluster['namespaces'], policies, [])
    isolated = {d: sorted('%s/%s' % (pod['namespace'], pod['name']) for pod in local
                          if netpol.isolating(pod, d, policies)) for d in (netpol.INGRESS, netpol.EGRESS)}
    return chains, rules, isolated, policy_source.dumps(cluster['policies'], everyone, cluster['namespaces'])


def plan_source(current, wanted, path):
    """Keep the record of what the table enforces in step with it."""
    if current == wanted:
        return []
    if wanted is None:
        return [Action('forget_source', path, 'state absent')]
    return [Action('record_source', path, _why_record(current))]


def _why_record(current):
    if current is None:
        return 'missing'
    if is_unreadable(current):
        return current
    try:
        json.loads(current)
    except ValueError as exc:
        return 'unreadable (not JSON: %s)' % exc
    return 'the policies or pods changed'


def main():
    module = AnsibleModule(
        argument_spec=dict(cluster=dict(type='raw'), running=dict(type='raw'),
                           pending=dict(type='list', elements='str', default=[]),
                           node=dict(type='str'), **NODE_STATE_OPTIONS),
        required_if=[('state', 'present', ('cluster', 'running', 'node'))],
        supports_check_mode=True)
    run_module(module, policy_of)


def policy_of(module):
    p = module.params
    if p['state'] == 'absent':
        return NodePolicy(module.run_command, p['state_dir'], None)
    compiled = compile_for(p)
    follows = following(p, *compiled[:2], compiled[3]) if module.check_mode else []
    return NodePolicy(module.run_command, p['state_dir'], compiled, follows)


if __name__ == '__main__':
    main()
