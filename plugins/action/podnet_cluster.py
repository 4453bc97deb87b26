"""podnet_cluster runs in Ansible's own process on the controller: the plan
is made there from the manifests and the nodes' facts and touches no node,
and as a module it paid for a fresh interpreter and its AnsiballZ imports
on every run, a third of a second of the everyday loop. Its documentation
is library/podnet_cluster.py."""
import json

import ansible.module_utils
from ansible import constants as C
from ansible.plugins.action import ActionBase

# podnet's module_utils, importable here as the modules import them.
ansible.module_utils.__path__.extend(p for p in C.DEFAULT_MODULE_UTILS_PATH
                                     if p not in ansible.module_utils.__path__)

ARGUMENT_SPEC = dict(manifests=dict(type='list', elements='path', required=True),
                     root=dict(type='path', required=True),
                     nodes=dict(type='dict', required=True),
                     cluster_cidr=dict(type='str', default='10.42.0.0/16'),
                     backend=dict(type='str', choices=['vxlan', 'host-gw'], default='vxlan'),
                     images=dict(type='dict', required=True))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, p = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        # Here, not at the top: Ansible imports action plugins in its main
        # process, which every worker is forked from (the plan pulls in pyroute2).
        from ansible.module_utils.podnet import capacity, cluster
        from ansible.module_utils.podnet.errors import PodnetError
        try:
            nodes = capacity.with_this_machine(described(p['nodes'], task_vars['hostvars']),
                                               dict(capacity.read_machine(), **capacity.lab_processes()))
            plan = cluster.build(cluster.resolve_paths(p['manifests'], p['root']), nodes,
                                 p['cluster_cidr'], p['backend'], p['images'])
        except PodnetError as exc:
            return dict(result, failed=True, msg=str(exc), subject=exc.subject)
        return dict(result, changed=False, policy_cluster=policy_cluster(plan), **with_pods_json(plan))


def policy_cluster(plan):
    """What every node's policy table is compiled from, as one JSON text: a
    worker templates a string for each node at a fraction of the cost of a
    structure holding 1,000 pods (about 50 ms a node)."""
    return json.dumps({key: plan[key] for key in ('policies', 'pods', 'namespaces')},
                      sort_keys=True, separators=(',', ':'))


def with_pods_json(plan):
    """The plan with each node's pods also as JSON text (pods_json), which
    the pods role passes: for the same reason as policy_cluster."""
    nodes = {name: dict(node, pods_json=json.dumps(node['pods'], sort_keys=True, separators=(',', ':')))
             for name, node in plan['nodes'].items()}
    return dict(plan, nodes=nodes)


def described(facts, hostvars):
    """The plan's node list: each node's facts with its name and the pod
    CIDR its inventory variable podnet_pod_cidr asks for."""
    return [dict(fact, name=name, explicit_pod_cidr=hostvars[name].get('podnet_pod_cidr'))
            for name, fact in facts.items()]
