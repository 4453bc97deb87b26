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
  - With O(probe), then sends one real probe from the source pod to O(dst) and reads
    the node's conntrack entry of it, which gives the source address the
    destination saw.
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
  port: {description: Destination port., type: int, required: true}
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
  description: C(cni0) when the destination is local, else the interface the packet leaves on.
  returned: always
  type: str
probe:
  description:
    - The probe's outcome (C(connected), C(refused), C(answered), C(timeout) ...) and the source address
      the destination saw.
  returned: with O(probe)
  type: dict
  sample: {outcome: connected, delivered: true, seen_source: 10.42.0.2}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.kernel.netlink import require_pyroute2

POD = dict(key=dict(type='str', required=True, no_log=False), netns=dict(type='str', required=True),
           veth=dict(type='str', required=True))
DEST = dict(POD, ip=dict(type='str', required=True), mac=dict(type='str', required=True))


def main():
    module = AnsibleModule(
        argument_spec=dict(src=dict(type='str', required=True), dst=dict(type='str', required=True),
                           source_pod=dict(type='dict', options=POD), iif=dict(type='str'),
                           destination_pod=dict(type='dict', options=DEST),
                           port=dict(type='int', required=True),
                           protocol=dict(type='str', choices=['TCP', 'UDP', 'SCTP'], required=True),
                           probe=dict(type='bool', default=False),
                           timeout=dict(type='float', default=1.0)),
        required_one_of=[('source_pod', 'iif')], mutually_exclusive=[('source_pod', 'iif')],
        required_if=[('probe', True, ('source_pod',))], supports_check_mode=True)
    require_pyroute2(module)
    from ansible.module_utils.podnet.core.errors import PodnetError
    from ansible.module_utils.podnet.explain import pathtrace
    p = module.params
    try:
        flow = pathtrace.Flow(p['src'], p['dst'], p['port'], p['protocol'])
        result = pathtrace.trace_node(module.run_command, flow, p['source_pod'], p['iif'],
                                      p['destination_pod'])
        if p['probe']:
            result['probe'] = pathtrace.probe(p['source_pod'], flow, p['timeout'])
    except (PodnetError, OSError) as exc:
        module.fail_json(msg='%s -> %s: %s' % (p['src'], p['dst'], exc))
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
