#!/usr/bin/python
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
    restores the traffic it blocked.
options:
  policies:
    description: The NetworkPolicy objects of the cluster, as in manifests.
    type: list
    elements: dict
    required: true
  pods:
    description:
      - Every pod of the cluster with C(namespace), C(name), C(labels), C(node)
        and C(containers) (their C(ports) resolve named ports).
    type: list
    elements: dict
    required: true
  running:
    description: Every running pod by namespace/name with at least its C(ip), as the nodes' podnet_pods results give them.
    type: dict
    required: true
  namespaces:
    description: The labels of every namespace.
    type: dict
    required: true
  node:
    description: This node's inventory name.
    type: str
    required: true
attributes:
  check_mode: {support: full}
  diff_mode: {support: full}
author: podnet developers
'''

EXAMPLES = r'''
- name: Enforce the cluster's policies for this node's pods.
  podnet_policy:
    policies: "{{ podnet_plan.policies }}"
    pods: "{{ podnet_plan.pods }}"
    running: {x/a: {ip: 10.42.0.2}, x/b: {ip: 10.42.1.2}}
    namespaces: "{{ podnet_plan.namespaces }}"
    node: "{{ inventory_hostname }}"
'''

RETURN = r'''
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

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet import netpol, netpol_nft, nft
from ansible.module_utils.podnet.errors import PodnetError


def cluster_pods(pods, running):
    """Running pods with their IP and container ports, as the compiler takes them."""
    found = []
    for pod in pods:
        key = '%s/%s' % (pod['namespace'], pod['name'])
        if (running.get(key) or {}).get('ip'):
            found.append({'namespace': pod['namespace'], 'name': pod['name'], 'node': pod['node'],
                          'labels': pod.get('labels') or {}, 'ip': running[key]['ip'],
                          'ports': [p for c in pod['containers'] for p in c.get('ports') or ()]})
    return found


def main():
    module = AnsibleModule(
        argument_spec=dict(policies=dict(type='list', elements='dict', required=True),
                           pods=dict(type='list', elements='dict', required=True),
                           running=dict(type='dict', required=True),
                           namespaces=dict(type='dict', required=True),
                           node=dict(type='str', required=True)),
        supports_check_mode=True)
    p = module.params
    try:
        policies = [netpol.parse_policy(raw) for raw in p['policies']]
        everyone = cluster_pods(p['pods'], p['running'])
        local = [pod for pod in everyone if pod['node'] == p['node']]
        chains, rules = netpol_nft.compile_node(local, everyone, p['namespaces'], policies, [])
        current = nft.current_table(module.run_command, netpol_nft.FAMILY, netpol_nft.TABLE)
        changed = nft.needs_update(current, chains, rules)
        if changed and not module.check_mode:
            nft.apply(module.run_command, nft.table_commands(
                netpol_nft.FAMILY, netpol_nft.TABLE, chains, rules), netpol_nft.TABLE)
    except PodnetError as exc:
        module.fail_json(msg=str(exc), subject=exc.subject)
    isolated = {d: sorted('%s/%s' % (pod['namespace'], pod['name']) for pod in local
                          if netpol.isolating(pod, d, policies)) for d in (netpol.INGRESS, netpol.EGRESS)}
    module.exit_json(changed=changed, rules=len(rules), isolated=isolated,
                     diff=dict(before=current or '', after=nft.wanted_table(chains, rules)))


if __name__ == '__main__':
    main()
