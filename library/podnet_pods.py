#!/usr/bin/python
"""Ansible module: reconcile every pod of one node in one call."""

DOCUMENTATION = r'''
---
module: podnet_pods
short_description: Run the pods wanted on a node, each in its own sandbox
description:
  - Reconciles the whole set of pods of the node it runs on. Per pod, as a CNI
    runtime and the bridge plugin do, a sandbox network namespace
    C(cni-<id>) (listed by C(ip netns)) held by a pause process
    (C(lsns) shows C(/pause)), a veth pair with the host side C(veth<8 hex>)
    on C(cni0) and the pod side C(eth0), an address from host-local style IPAM
    kept on the node's disk, C(lo) up and a default route via the gateway.
  - Containers are processes in PID and mount namespaces of their own that join
    the sandbox's network, IPC and UTS namespaces. Their output goes to
    C(<state_dir>/pods/<namespace>_<name>/<container>.log).
  - Pods no longer wanted are removed with their sandbox, veth, address and
    processes. A pod whose pause or veth is gone is recreated; a container that
    exited is restarted; a changed MTU is applied to running pods.
  - The pause process is C(/bin/cat) started as C(/pause), blocked on a pipe it
    holds both ends of, so that it does nothing, as the real pause.
options:
  pods:
    description:
      - Every pod wanted on this node; containers carry their resolved command line.
    type: list
    elements: dict
    required: true
  pod_cidr:
    description: This node's pod CIDR; its first address is the gateway on C(cni0).
    type: str
    required: true
  mtu:
    description: MTU of the pods' interfaces (underlay MTU less the backend's overhead).
    type: int
    required: true
  state_dir:
    description: The node's state directory.
    type: path
    default: /var/lib/podnet
attributes:
  check_mode: {support: full}
  diff_mode: {support: full}
author: podnet developers
'''

EXAMPLES = r'''
- name: Run the pods of this node.
  podnet_pods:
    pod_cidr: 10.42.1.0/24
    mtu: 1450
    pods:
      - namespace: default
        name: multi-container-pod
        labels: {app: demo}
        containers:
          - {name: curl, argv: [sleep, 365d]}
          - {name: httpbin, argv: [gunicorn, -b, "0.0.0.0:80", "httpbin:app"]}
'''

RETURN = r'''
pods:
  description: Each pod of the node after the call, by namespace/name.
  returned: always
  type: dict
  sample: {default/multi-container-pod: {ip: 10.42.1.14, netns: cni-607c5530-b6d8-ba57-420e-a467d7b10c56,
           veth: veth7912056b, mac: "f2:c8:17:b6:5f:e5"}}
actions:
  description: What was done (or would be, in check mode) as verb, pod and reason.
  returned: always
  type: list
  elements: list
  sample: [[create, default/web, new pod]]
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.errors import PodnetError
from ansible.module_utils.podnet.netlink import NetlinkError, require_pyroute2

SHOWN = ('ip', 'netns', 'veth', 'mac', 'uid')


def main():
    module = AnsibleModule(
        argument_spec=dict(pods=dict(type='list', elements='dict', required=True),
                           pod_cidr=dict(type='str', required=True),
                           mtu=dict(type='int', required=True),
                           state_dir=dict(type='path', default='/var/lib/podnet')),
        supports_check_mode=True)
    require_pyroute2(module)
    from ansible.module_utils.podnet.pods import NodePods
    p = module.params
    wanted = {'%s/%s' % (pod['namespace'], pod['name']): pod for pod in p['pods']}
    try:
        node = NodePods(p['state_dir'], p['pod_cidr'], p['mtu'])
        current = node.read_current()
        before = {k: 'broken: ' + '; '.join(s['problems']) if s['problems'] else 'running'
                  for k, s in current.items()}
        actions = node.plan(current, wanted)
        if actions and not module.check_mode:
            node.apply(actions, current, wanted)
    except PodnetError as exc:
        module.fail_json(msg=str(exc), subject=exc.subject)
    except (NetlinkError, OSError) as exc:
        module.fail_json(msg='kernel refused a change: %s' % (exc,))
    module.exit_json(
        changed=bool(actions), actions=[list(a) for a in actions],
        pods={k: {f: s.get(f) for f in SHOWN} for k, s in current.items()},
        diff=dict(before=before, after={k: 'running' for k in wanted}))


if __name__ == '__main__':
    main()
