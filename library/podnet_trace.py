#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: one packet's hops through this node, read from the kernel."""

DOCUMENTATION = r'''
---
module: podnet_trace
short_description: Read one packet's path through a node from the kernel, hop by hop
description:
  - Runs on the node a packet from O(src) to O(dst) crosses; playbooks/explain.yml
    calls it on the source pod's node and on the destination pod's node.
  - With O(source_pod), starts inside that pod (its route to O(dst), the next hop's
    neighbour entry, eth0), then enters the node on the pod's veth. Otherwise the
    packet arrives on O(iif) (C(flannel.1), or C(underlay) for the node's underlay NIC).
  - On the node, the route lookup from that interface, then cni0's neighbour and FDB
    entries and the destination pod's veth when O(dst) is local, or flannel.1's
    neighbour and FDB entries and the underlay route, or the host-gw next hop.
  - It judges the node's nftables filter chains (prerouting, forward, postrouting, in
    the ip and inet families) for the new connection, and names the rule that drops or
    rejects it; podnet's policy table is judged by the NetworkPolicy model instead.
  - On the source node it also reads the live nat table's decision.
  - "With O(service) (a pod to a Service's ClusterIP), the source pod's route is read to the
    ClusterIP, and the DNAT hops follow the packet's arrival on the node, read from the live
    table C(ip podnet-services): the C(service-ips) map's element for the ClusterIP, protocol and
    port and the chain it goes to (or the C(no-endpoint-services) element that rejects it, where
    the path stops), how that chain picks among its endpoints (C(numgen random), ClientIP
    affinity sets with their timeout and whether this client is in one), and the endpoint
    chain's DNAT to the endpoint at O(dst) and O(port), the one the explanation follows. The rest of
    the path is traced to that endpoint."

  - With O(probe), then sends one real probe from the source pod to O(dst) and reads
    the node's conntrack entry of it, which gives the source address the
    destination saw. With O(service), the probe goes to the ClusterIP and its port,
    and the conntrack entry also gives the endpoint the kernel chose.
  - Each hop says what the kernel holds there and names the problem that stops the
    packet there, if any (a missing route, FDB or neighbour entry, a down link).
  - Changes nothing (the probe is one connection or datagram).
options:
  src: {description: The packet's source address (the source pod's IP)., type: str, required: true}
  dst: {description: Its destination address., type: str, required: true}
  source_pod:
    description: The source pod, when it runs on this node.
    type: dict
    suboptions:
      key: {description: namespace/name., type: str, required: true}
      netns: {description: Its sandbox in /run/netns., type: str, required: true}
      veth: {description: Its veth on the node., type: str, required: true}
  iif:
    description: Where the packet enters this node when the source pod is elsewhere; C(underlay) names the underlay NIC.
    type: str
  destination_pod:
    description: The destination pod, when it runs on this node.
    type: dict
    suboptions:
      key: {description: namespace/name., type: str, required: true}
      ip: {description: Its address., type: str, required: true}
      mac: {description: Its eth0 MAC., type: str, required: true}
      netns: {description: Its sandbox., type: str, required: true}
      veth: {description: Its veth on the node., type: str, required: true}
  port: {description: "Destination port (with O(service) the endpoint's port, after DNAT).", type: int, required: true}
  service:
    description:
      - The Service the source pod sends to; O(dst) and O(port) are then the endpoint the path follows
        (O(dst) the ClusterIP itself when the Service has no endpoints). Only with O(source_pod).
    type: dict
    suboptions:
      key: {description: namespace/name of the Service., type: str, required: true}
      ip: {description: Its ClusterIP., type: str, required: true}
      port: {description: The Service port., type: int, required: true}
      endpoints:
        description:
          - The endpoints of the port as podnet_facts C(services) gives them (pod, node, ip, port), to name them.
        type: list
        elements: dict
        default: []
      endpoint:
        description: The endpoint the path follows (pod, node, ip, port); null when there is none.
        type: dict
      why: {description: Why the path follows that endpoint., type: str}
  external:
    description:
      - The outside host dials this node's NodePort or LoadBalancer port (O(iif) C(underlay)); O(dst) and
        O(port) are then the endpoint the path follows (O(dst) the node's address when none serves it here).
        The DNAT hops name the C(service-nodeports) or C(service-ips) element, the C(ext-...) chain
        (externalTrafficPolicy Cluster marks for masquerade, Local keeps the client's address and serves only
        this node's endpoints, or drops), the pick and the DNAT; a hop after the filter chains says whether
        postrouting masquerades it, and to which address.
    type: dict
    suboptions:
      key: {description: namespace/name of the Service., type: str, required: true}
      kind: {description: What the outside host dials., type: str, choices: [nodeport, loadbalancer], required: true}
      ip: {description: The node's underlay address., type: str, required: true}
      port: {description: "The node port, or the LoadBalancer's port.", type: int, required: true}
      protocol: {description: The protocol., type: str, choices: [TCP, UDP, SCTP], required: true}
      external_local: {description: externalTrafficPolicy is Local., type: bool, default: false}
      endpoints:
        description: The endpoints this node picks among (pod, node, ip, port).
        type: list
        elements: dict
        default: []
      endpoint: {description: The endpoint the path follows; null when there is none., type: dict}
      why: {description: Why the path follows that endpoint., type: str}
  protocol: {description: The protocol., type: str, choices: [TCP, UDP, SCTP], required: true}
  probe:
    description: Send one probe from O(source_pod) to O(dst) on O(port) after reading.
    type: bool
    default: false
  timeout: {description: Seconds before the probe counts as timed out., type: float, default: 1.0}
attributes:
  check_mode: {support: full}
  diff_mode: {support: none}
extends_documentation_fragment: [podnet.attributes]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: The source half of x/a -> the Service default/echo (10.43.118.21:80), following one endpoint.
  podnet_trace:
    src: 10.42.0.2
    dst: 10.42.1.4
    port: 8080
    protocol: TCP
    source_pod: {key: x/a, netns: cni-607c5530-b6d8-ba57-420e-a467d7b10c56, veth: veth7912056b}
    service:
      key: default/echo
      ip: 10.43.118.21
      port: 80
      endpoints: [{pod: default/echo-7d4b9c8f6d-x2x7k, node: node2, ip: 10.42.1.4, port: 8080}]
      endpoint: {pod: default/echo-7d4b9c8f6d-x2x7k, node: node2, ip: 10.42.1.4, port: 8080}
      why: the first by pod name
    probe: true

- name: The first half of x/a -> y/b on x/a's node, with a probe to port 80.
  podnet_trace:
    src: 10.42.0.2
    dst: 10.42.1.3
    source_pod: {key: x/a, netns: cni-607c5530-b6d8-ba57-420e-a467d7b10c56, veth: veth7912056b}
    port: 80
    protocol: TCP
    probe: true

- name: The second half on y/b's node.
  podnet_trace:
    src: 10.42.0.2
    dst: 10.42.1.3
    iif: flannel.1
    port: 80
    protocol: TCP
    destination_pod: {key: y/b, ip: 10.42.1.3, mac: "f2:c8:17:b6:5f:e5",
                      netns: cni-4fa25bbb-4645-43b0-9241-10c8bf6cbee8, veth: veth4b1c2d3e}
'''

RETURN = r'''
hops:
  description: The hops on this node in order, each with C(at), C(says) and C(problem) (null when it passes).
  returned: always
  type: list
  elements: dict
  sample: [{at: x/a eth0, says: "ip route get 10.42.1.3: via 10.42.0.1 10.42.1.3 dev eth0 src 10.42.0.2",
            problem: null}]
leaves_by:
  description: C(cni0) when the destination is local, else the interface the packet leaves on; null where it stops.
  returned: always
  type: str
rejected:
  description: Whether this node rejects the packet at the DNAT hop (a Service without endpoints).
  returned: always
  type: bool
masquerades_to:
  description:
    - With O(external), the address this node's masquerade gives the packet (externalTrafficPolicy Cluster), as the
      kernel picks it from the interface it leaves by; null when it is not masqueraded.
  returned: always
  type: str
  sample: 10.42.0.0
probe:
  description:
    - The probe's outcome (C(connected), C(refused), C(answered), C(timeout) ...) and the source address
      the destination saw.
    - With O(service), C(endpoint) is the endpoint (C(ip:port)) the kernel chose, from the conntrack
      entry's reply tuple; null when conntrack holds none (the packet was rejected or dropped first).
  returned: with O(probe)
  type: dict
  sample: {outcome: connected, delivered: true, seen_source: 10.42.0.2, endpoint: "10.42.1.4:8080"}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.kernel.netlink import require_pyroute2

POD = dict(key=dict(type='str', required=True, no_log=False), netns=dict(type='str', required=True),
           veth=dict(type='str', required=True))
DEST = dict(POD, ip=dict(type='str', required=True), mac=dict(type='str', required=True))
SERVICE = dict(key=dict(type='str', required=True, no_log=False), ip=dict(type='str', required=True),
               port=dict(type='int', required=True), endpoints=dict(type='list', elements='dict', default=[]),
               endpoint=dict(type='dict'), why=dict(type='str'))
EXTERNAL = dict(key=dict(type='str', required=True, no_log=False),
                kind=dict(type='str', choices=['nodeport', 'loadbalancer'], required=True),
                ip=dict(type='str', required=True), port=dict(type='int', required=True),
                protocol=dict(type='str', choices=['TCP', 'UDP', 'SCTP'], required=True),
                external_local=dict(type='bool', default=False),
                endpoints=dict(type='list', elements='dict', default=[]), endpoint=dict(type='dict'),
                why=dict(type='str'))


def main():
    module = AnsibleModule(
        argument_spec=dict(src=dict(type='str', required=True), dst=dict(type='str', required=True),
                           source_pod=dict(type='dict', options=POD), iif=dict(type='str'),
                           destination_pod=dict(type='dict', options=DEST),
                           port=dict(type='int', required=True),
                           service=dict(type='dict', options=SERVICE),
                           external=dict(type='dict', options=EXTERNAL),
                           protocol=dict(type='str', choices=['TCP', 'UDP', 'SCTP'], required=True),
                           probe=dict(type='bool', default=False),
                           timeout=dict(type='float', default=1.0)),
        required_one_of=[('source_pod', 'iif')], mutually_exclusive=[('source_pod', 'iif')],
        required_if=[('probe', True, ('source_pod',))], required_by={'service': 'source_pod', 'external': 'iif'},
        supports_check_mode=True)
    require_pyroute2(module)
    from ansible.module_utils.podnet.core.errors import PodnetError
    from ansible.module_utils.podnet.explain import pathtrace
    p = module.params
    try:
        flow = pathtrace.Flow(p['src'], p['dst'], p['port'], p['protocol'])
        result = pathtrace.trace_node(module.run_command, flow, p['source_pod'], p['iif'],
                                      p['destination_pod'], p['service'], p['external'])
        if p['probe']:
            target = (p['service']['ip'], p['service']['port']) if p['service'] else None
            result['probe'] = pathtrace.probe(p['source_pod'], flow, p['timeout'], target)
    except (PodnetError, OSError) as exc:
        module.fail_json(msg='%s -> %s: %s' % (p['src'], p['dst'], exc))
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
