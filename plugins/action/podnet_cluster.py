# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""podnet_cluster runs in Ansible's own process on the controller: the plan
is made there from the manifests and the nodes' facts and touches no node,
and as a module it paid for a fresh interpreter and its AnsiballZ imports
on every run, a third of a second of the everyday loop. Its documentation
is library/podnet_cluster.py."""
import json

import ansible.module_utils
from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

# podnet's module_utils, importable here as the modules import them.
ansible.module_utils.__path__.extend(p for p in C.DEFAULT_MODULE_UTILS_PATH
                                     if p not in ansible.module_utils.__path__)

ARGUMENT_SPEC = dict(manifests=dict(type='list', elements='path', required=True),
                     root=dict(type='path', required=True),
                     nodes=dict(type='dict', required=True),
                     cluster_cidr=dict(type='str', default='10.42.0.0/16'),
                     backend=dict(type='str', choices=['vxlan', 'host-gw'], default='vxlan'),
                     images=dict(type='dict', required=True),
                     cluster_dns=dict(type='path'),
                     unknown_images=dict(type='str', choices=['stand-in', 'refuse'], default='stand-in'))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, p = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        # Here, not at the top: Ansible imports action plugins in its main
        # process, which every worker is forked from (the plan pulls in pyroute2).
        from ansible.module_utils.podnet.lab.host import lab_processes
        from ansible.module_utils.podnet.plan import capacity, cluster
        from ansible.module_utils.podnet.core.errors import PodnetError
        try:
            nodes = capacity.with_this_machine(described(p['nodes'], task_vars['hostvars']),
                                               dict(capacity.read_machine(), **lab_processes()))
            plan = cluster.build(cluster.resolve_paths(p['manifests'], p['root']), nodes,
                                 p['cluster_cidr'], p['backend'], p['images'], p['cluster_dns'],
                                 p['unknown_images'])
        except PodnetError as exc:
            return dict(result, failed=True, msg=str(exc), subject=exc.subject)
        for line in said(plan):
            Display().display(line)
        return dict(result, changed=False, **registered(plan))


def registered(plan):
    """What the play keeps of the plan (register: podnet_plan). Ansible walks
    every value a task registers, and every argument it templates for each
    node: what is large goes as JSON text, which costs it next to nothing.
    At 1,000 pods a structure cost about 50 ms a node to template, and
    registering the pods and policies as structures took half the plan's
    time (0.68 s, against 0.35 s as text). So each node's pods go as
    pods_json, and what every node's policy table is compiled from as
    policy_cluster."""
    nodes = {name: dict({k: v for k, v in node.items() if k != 'pods'}, pods_json=_text(node['pods']))
             for name, node in plan['nodes'].items()}
    return {'backend': plan['backend'], 'nodes': nodes, 'placement': plan['placement'],
            'namespaces': plan['namespaces'], 'workloads': plan['workloads'], 'ignored': plan['ignored'],
            'notes': plan['notes'], 'stand_ins': plan['stand_ins'],
            'policy_cluster': _text({key: plan[key] for key in ('policies', 'pods', 'namespaces')}),
            'services_json': _text(plan['services'])}


def said(plan):
    """Lines naming what the manifests hold that podnet does not model: the
    objects it ignores, the images it stands in for, and per pod (or
    workload) what it does not set up."""
    ignored, stand_ins = plan['ignored'], plan['stand_ins']
    lines = ['podnet: ignored %d object%s podnet does not model: %s' % (
        len(ignored), '' if len(ignored) == 1 else 's', ', '.join(ignored))] if ignored else []
    if stand_ins:
        lines.append('podnet: stood in for %d image%s podnet cannot run (agnhost netexec on their containerPorts): %s'
                     % (len(stand_ins), '' if len(stand_ins) == 1 else 's',
                        ', '.join('%s (%s)' % (image, ', '.join(stand_ins[image])) for image in sorted(stand_ins))))
    return lines + ['podnet: %s: %s' % (owner, '; '.join(notes)) for owner, notes in sorted(plan['notes'].items())]


def _text(value):
    return json.dumps(value, sort_keys=True, separators=(',', ':'))


def described(facts, hostvars):
    """The plan's node list: each node's facts with its name and the pod
    CIDR its inventory variable podnet_pod_cidr asks for."""
    return [dict(fact, name=name, explicit_pod_cidr=hostvars[name].get('podnet_pod_cidr'))
            for name, fact in facts.items()]
