#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: what a node's pod network looks like, as facts."""

DOCUMENTATION = r'''
---
module: podnet_facts
short_description: Gather a node's pods, addresses, veth pairs, routes and FDB
description:
  - Reads the node's pod records and the kernel, and returns them as the fact
    C(podnet), holding the pod CIDR, every pod with its IP, MAC, sandbox and host veth
    (with the ifindex pairs C(eth0@ifN) refers to), its labels and the container ports it
    declares (C(name), C(containerPort), C(protocol)), the main routing table, and
    the FDB and permanent neighbours of C(flannel.1) when the backend is vxlan.
  - C(underlay) is the node's underlay (address, prefix length, interface and MTU of the
    source of its default route); C(vtep) is its flannel.1 (VNI, MAC, address) under vxlan.
  - C(policy_source) is what the node's policy table was compiled from (the
    NetworkPolicy objects, the running pods, the namespaces' labels), as
    podnet_policy recorded it; null when the node enforces no policy table.
  - C(services) is every Service as the node's Services table serves it (type, ClusterIP,
    session affinity timeout, traffic policies, and each port with its endpoints (pod, node,
    IP and port)), as podnet_services recorded it; null when the node serves no Services table.
    The path explainer and the prober take Services as targets from it.
  - Changes nothing.
options:
  state_dir: {description: The node's state directory., type: path, default: /var/lib/podnet}
attributes:
  check_mode: {support: full}
  diff_mode: {support: none}
extends_documentation_fragment: [podnet.attributes]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Learn what runs on the node.
  podnet_facts:

- name: Show the pods of node1.
  ansible.builtin.debug:
    var: ansible_facts.podnet.pods
'''

RETURN = r'''
ansible_facts:
  description:
    - C(podnet) with pod_cidr, backend, underlay, vtep, pods, routes, fdb, neighbours, policy_source and services.
  returned: always
  type: dict
  sample: {podnet: {pod_cidr: 10.42.1.0/24, backend: vxlan,
           pods: {default/multi-container-pod: {ip: 10.42.1.2, mac: "f2:c8:17:b6:5f:e5",
                  netns: cni-607c5530-b6d8-ba57-420e-a467d7b10c56, veth: veth7912056b,
                  veth_ifindex: 17, eth0_ifindex: 2, containers: {curl: 1071, httpbin: 1073},
                  ports: [{name: null, containerPort: 80, protocol: TCP}]}},
           routes: [{dst: 10.42.2.0/24, gateway: 10.42.2.0, dev: flannel.1, proto: 200}],
           fdb: {"02:6f:fc:67:c4:4b": 10.11.1.13}, neighbours: {10.42.2.0: "02:6f:fc:67:c4:4b"},
           policy_source: {policies: [], namespaces: {default: {}},
                           pods: [{namespace: default, name: netexec-a, node: node1, ip: 10.42.0.3,
                                   labels: {app: netexec}, ports: []}]},
           services: {default/echo: {type: ClusterIP, cluster_ip: 10.43.118.21, affinity_timeout: null,
                                     external_local: false, internal_local: false,
                                     ports: [{name: http, protocol: TCP, port: 80, node_port: null,
                                              endpoints: [{pod: default/echo-7d4b9c8f6d-x2x7k, node: node2,
                                                           ip: 10.42.1.4, port: 8080}]}]}}}}
'''


from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.kernel.netlink import (
    AF_INET,
    RT_TABLE_MAIN,
    links_by_name,
    require_pyroute2,
    rtnl,
    underlay_facts,
)
from ansible.module_utils.podnet.node import backend
from ansible.module_utils.podnet.node.nodestate import read_pod_cidr, read_pod_records
from ansible.module_utils.podnet.policy import policy_source
from ansible.module_utils.podnet.services import record as services_record


def pod_facts(record, links):
    veth = links.get(record['veth'])
    return {'ip': record['ip'], 'mac': record.get('mac'), 'netns': record['netns'],
            'veth': record['veth'], 'uid': record['uid'], 'labels': record.get('labels', {}),
            'ports': record.get('ports', []),
            'veth_ifindex': veth['index'] if veth else None,
            'eth0_ifindex': veth.get('IFLA_LINK') if veth else None,
            'containers': {n: p['pid'] for n, p in record['containers'].items()}}


def route_facts(ipr, by_index):
    return [{'dst': '%s/%d' % (r.get('RTA_DST') or '0.0.0.0', r['dst_len']),
             'gateway': r.get('RTA_GATEWAY'), 'dev': by_index.get(r.get('RTA_OIF')),
             'proto': r['proto']} for r in ipr.get_routes(family=AF_INET, table=RT_TABLE_MAIN)]


def main():
    module = AnsibleModule(argument_spec=dict(state_dir=dict(type='path', default='/var/lib/podnet')),
                           supports_check_mode=True)
    require_pyroute2(module)
    state_dir = module.params['state_dir']
    with rtnl() as ipr:
        links = links_by_name(ipr)
        routes = route_facts(ipr, {link['index']: n for n, link in links.items()})
    kernel = backend.read_state(module.run_command)
    kind = 'vxlan' if kernel['vtep'] else ('host-gw' if kernel['routes'] else None)
    try:
        underlay = underlay_facts()
    except LookupError:
        underlay = None
    facts = {'pod_cidr': read_pod_cidr(state_dir), 'backend': kind, 'routes': routes,
             'underlay': underlay, 'vtep': kernel['vtep'],
             'fdb': kernel['fdb'], 'neighbours': kernel['neigh'],
             'pods': {key: pod_facts(record, links)
                      for key, record in read_pod_records(state_dir)[0].items()},
             'policy_source': policy_source.load(state_dir),
             'services': services_record.served(state_dir)}
    module.exit_json(changed=False, ansible_facts={'podnet': facts})


if __name__ == '__main__':
    main()
