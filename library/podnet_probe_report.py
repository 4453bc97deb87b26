#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: the truth tables of all nodes' probes, stored or compared."""

DOCUMENTATION = r'''
---
module: podnet_probe_report
short_description: Print, store and check the reachability matrices of podnet_probe
description:
  - Runs once, on the controller. Gathers the cells C(podnet_probe) returned on every
    node into one matrix per port and protocol, rows the source pods and columns the
    target pods, both sorted.
  - Prints each as the Kubernetes netpol e2e tests print a truth table (returned as
    C(table) lines and in C(msg)); a header line C(TCP/80), then a tab-separated grid
    whose first row is C(-) and the targets, each further row a source and one mark per
    target, C(.) allowed, C(X) denied, C(?) not decided (followed by a line saying why).
  - With C(output), writes the matrices as JSON, a list of
    C({port, protocol, pods, ips, allowed}) with C(allowed) mapping source to target
    to true, false or null.
  - 'With C(expect), a file in that format, compares cell by cell every port and
    protocol of the expectation and fails listing every cell that differs, such as
    C(TCP/80 x/a -> y/b: expected allowed, got denied); a pod, port or protocol of the
    expectation that was not probed differs too. Null cells of the expectation, and
    what the expectation does not name, are not compared.'
  - "With O(model), a node's policy record (the C(policy_source) of podnet_facts), it
    computes the matrices the NetworkPolicy model gives for the same pods, ports and
    protocols. Each truth table is then followed by why its denied cells are denied
    (C(X ingress: isolated by x/deny-all, no rule allows: y/a->x/a ...)), and every cell
    where the model and the kernel disagree is returned in C(disagreements) with the
    model's reason, and warned about; with O(expect_model) they fail the task."
  - "Cells of Service targets (C(svc <namespace>/<name>:<port>), podnet_probe's C(probe_services)) are
    columns of their port's matrix. Given O(services), the model judges them at the endpoints, after
    DNAT, as Kubernetes does: allowed when the model allows the client to reach every endpoint of the
    port, denied when it allows none, undecided (not compared) when it allows some, since the kernel
    picks an endpoint per connection, when the Service has no endpoint, or when the client is an endpoint
    (hairpin, masqueraded: its policy sees the node's address); the tables say so."
  - "Against the model, a cell refused (a TCP reset, an ICMP port unreachable) counts as
    allowed: podnet drops what a policy denies and never rejects, so a refusal comes from
    the target pod itself, with nothing listening on the port. The truth table still marks
    it C(X), as the e2e tests do, and says why."
options:
  results:
    description: The C(results) of C(podnet_probe) on every node, concatenated.
    type: list
    elements: dict
    required: true
  pods:
    description: 'Every pod probed, as namespace/name to IP: the rows and columns of each matrix.'
    type: dict
    required: true
  output:
    description:
      - File to write the matrices to as JSON; not written in check mode.
      - With C(model), each matrix has C(why), the reason of every cell not allowed.
    type: path
  expect:
    description: JSON file of expected matrices, as C(output) writes them.
    type: path
  model:
    description: A node's policy record (podnet_facts C(policy_source)) to compare the kernel with.
    type: dict
  services:
    description:
      - The Services a node serves (podnet_facts C(services)), for the model to judge Service cells at their endpoints.
    type: dict
  expect_model:
    description: Fail when a cell differs from what O(model) computes.
    type: bool
    default: false
attributes:
  check_mode: {support: full}
  diff_mode: {support: none}
extends_documentation_fragment: [podnet.attributes]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Print the truth tables and keep them as the expectation of later runs.
  podnet_probe_report:
    results: "{{ ansible_play_hosts | map('extract', hostvars, ['probe', 'results']) | flatten }}"
    pods: {x/a: 10.42.0.7, y/b: 10.42.1.4}
    output: /tmp/reachability.json
  run_once: true
  delegate_to: localhost

- name: Fail when any cell differs from the expectation.
  podnet_probe_report:
    results: "{{ ansible_play_hosts | map('extract', hostvars, ['probe', 'results']) | flatten }}"
    pods: "{{ pod_ips }}"
    expect: tests/expected/deny-all.json
  run_once: true
  delegate_to: localhost
'''

RETURN = r'''
table:
  description: The truth tables, one line per item, grid cells tab-separated.
  returned: always
  type: list
  elements: str
  sample: ["TCP/80", "-\tx/a\tx/b", "x/a\t.\tX", "x/b\t.\t."]
matrices:
  description: The matrices, as C(output) writes them.
  returned: always
  type: list
  elements: dict
  sample: [{port: 80, protocol: TCP, pods: [x/a, x/b], ips: {x/a: 10.42.0.7, x/b: 10.42.1.4},
            allowed: {x/a: {x/a: true, x/b: false}, x/b: {x/a: true, x/b: true}}}]
summary:
  description: Allowed, denied and undecided cells of each matrix.
  returned: always
  type: dict
  sample: {TCP/80: {allowed: 3, denied: 1, undecided: 0}}
disagreements:
  description: Every cell where the kernel differs from O(model), with the model's reason;
    empty without O(model).
  returned: always
  type: list
  elements: str
  sample: ["TCP/80 y/b -> x/a: expected denied (ingress of x/a: isolated by x/deny-all, no rule allows), got allowed"]
differences:
  description: Every cell that differs from C(expect); empty without it. On that failure
    only C(msg), C(table) and C(differences) are returned.
  returned: always
  type: list
  elements: str
  sample: ["TCP/80 x/a -> x/b: expected allowed, got denied"]
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.core.errors import PodnetError
from ansible.module_utils.podnet.core.statefile import read_text, write_atomic
from ansible.module_utils.podnet.explain import reachability

CELL_FIELDS = ('from', 'to', 'port', 'protocol', 'allowed')


def main():
    module = AnsibleModule(
        argument_spec=dict(results=dict(type='list', elements='dict', required=True),
                           pods=dict(type='dict', required=True),
                           output=dict(type='path'), expect=dict(type='path'),
                           model=dict(type='dict'), services=dict(type='dict'),
                           expect_model=dict(type='bool', default=False)),
        supports_check_mode=True)
    p = module.params
    broken = [c for c in p['results'] if not all(k in c for k in CELL_FIELDS)]
    if broken:
        module.fail_json(msg='results: %d cells lack one of %s, e.g. %s'
                         % (len(broken), ', '.join(CELL_FIELDS), broken[0]))
    if p['expect_model'] and not p['model']:
        module.fail_json(msg='expect_model: no policy record to compare with (model is empty): '
                             'converge with playbooks/site.yml first')
    matrices = reachability.build(p['results'], p['pods'])
    try:
        model = reachability.model_matrices(matrices, p['model'], p['services']) if p['model'] else None
    except (PodnetError, KeyError, TypeError) as exc:
        module.fail_json(msg='model: not a policy record {policies, pods, namespaces}: %s' % exc)
    table = reachability.table(matrices, model)
    found = dict(table=table, matrices=[m.as_dict() for m in matrices],
                 summary=reachability.summary(matrices), differences=[],
                 disagreements=reachability.compare(model, reachability.reached(matrices)) if model else [])
    if found['disagreements'] and p['expect_model']:
        module.fail_json(msg='%d cells differ from the policy model:\n%s' % (
            len(found['disagreements']), '\n'.join(found['disagreements'])), **found)
    for line in found['disagreements']:
        module.warn('the kernel and the policy model disagree: ' + line)
    changed = False
    try:
        if p['expect']:
            text = read_text(p['expect'])
            if text is None:
                module.fail_json(msg='expect: %s does not exist' % p['expect'], **found)
            found['differences'] = reachability.compare(reachability.loads(text, p['expect']), matrices)
        if p['output']:
            text = reachability.dumps(matrices, model)
            changed = read_text(p['output']) != text
            if changed and not module.check_mode:
                write_atomic(p['output'], text)
    except (PodnetError, OSError) as exc:
        module.fail_json(msg=str(exc), **found)
    if found['differences']:
        module.fail_json(msg='%d cells differ from %s:\n%s' % (
            len(found['differences']), p['expect'], '\n'.join(found['differences'])),
            table=table, differences=found['differences'])
    module.exit_json(changed=changed, msg='\n'.join(table), **found)


if __name__ == '__main__':
    main()
