#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: the path explainer's controller side (playbooks/explain.yml)."""

DOCUMENTATION = r'''
---
module: podnet_explain
short_description: Check an explain request against the live pods, then put the path together
description:
  - Runs on the controller, in two steps of playbooks/explain.yml.
  - Without O(traces), checks O(from), O(to), O(port) and O(protocol) against the pods the
    nodes report (podnet_facts) and returns C(located), with C(legs), the podnet_trace
    options of each node the path crosses. An unknown pod or IP, a pod with no IP, a
    malformed port or protocol fails here, naming the argument, before any probe is sent.
  - With O(traces), the nodes' podnet_trace results, returns the whole path in order
    (source pod, source node with its NAT decision, the egress verdict, the lab fabric
    read live in its namespace, the destination node, the ingress verdict, the destination
    pod, the probe), the first hop that stops the packet, and whether the probe agrees
    with the prediction. The verdicts name the policy and rule that allow, or the
    policies that isolate a pod with no rule that allows.
  - "O(to) may be a Service, as C(svc/<namespace>/<name>) or its ClusterIP, from the source node's
    record (O(services_by_node)); O(port) is then one of its ports (number or name, default its first
    of the protocol). The path follows one endpoint, the first by pod name or O(endpoint): the source's
    leg gets C(service), so its node reads the DNAT hops (table C(ip podnet-services), the chain, the
    endpoints and how one is chosen) and probes the ClusterIP; the rest goes to the endpoint pod, whose
    ingress verdict is judged after DNAT, and a C(conntrack) hop tells the reverse NAT. The probe hop
    names the endpoint the kernel chose. A Service without endpoints stops at the DNAT hop (no endpoints,
    rejected) and the probe agrees only when refused. An unknown or headless Service, or a port or
    endpoint it does not have, fails naming O(to), O(port) or O(endpoint) before any probe."
  - "From C(outside) (the lab's outside host), O(to) is a node's NodePort or LoadBalancer port: the path is the
    outside host's route, the fabric, the node's DNAT (C(service-nodeports) or C(service-ips), the C(ext-...)
    chain: externalTrafficPolicy Cluster masquerades and picks among all endpoints, Local keeps the client's
    address and picks among the node's own, or drops), the endpoint and the reverse NAT. The endpoint's node,
    when another, is read with the address the entry node masquerades to, and its ingress policies judge that
    address (an endpoint on the entry node is judged for the outside host's, before postrouting masquerades).
    A probe that saw another source than the path predicts for the endpoint it reached disagrees. The probe is one
    connection from the outside host, run here in its namespace, and the node's conntrack gives the endpoint
    chosen and the source it saw. A Service that is not NodePort or LoadBalancer, a node not in O(lab), or no
    outside host fails naming O(to), O(via) or O(from) before any probe."
  - Changes nothing but O(output), a JSON file of the result.
options:
  pods_by_node:
    description: Every node's pods as podnet_facts gives them (C(ansible_facts.podnet.pods)), by node.
    type: dict
    required: true
  from:
    description: The source pod, as namespace/name, or C(outside), the lab's outside host (O(lab) C(outside)).
    type: str
    required: true
  to:
    description:
      - The destination, a pod as namespace/name, a Service as svc/namespace/name or its ClusterIP, or an IPv4 address.
      - From C(outside), C(<node>:<port>) (a nodePort, else a LoadBalancer port on that node's address), or a
        NodePort or LoadBalancer Service as svc/namespace/name with O(via).
    type: str
    required: true
  via:
    description: From C(outside) to svc/namespace/name, the node whose address the outside host dials.
    type: str
  port:
    description:
      - Destination port; default the first port the destination pod declares, else 80.
      - To a Service, one of its ports, by number or name; default its first port of the protocol.
    type: str
  endpoint:
    description: To a Service, the endpoint pod (namespace/name) the path follows; default the first by pod name.
    type: str
  services_by_node:
    description: Every node's Services as podnet_facts gives them (C(ansible_facts.podnet.services)), by node.
    type: dict
    default: {}
  protocol:
    description: C(TCP) (default), C(UDP) or C(SCTP), any case.
    type: str
  backends:
    description:
      - Each node's backend (podnet_facts C(backend)), to know where the packet enters the destination's node.
      - From C(outside), with O(pod_cidrs), O(vteps) and O(lab) C(underlay), the address the entry node masquerades
        a packet to (cni0's to its own endpoint, flannel.1's or the underlay's to another node's), the source the
        endpoint's node is read with.
    type: dict
    default: {}
  pod_cidrs:
    description: Each node's pod CIDR (podnet_facts C(pod_cidr)); cni0 holds its first address.
    type: dict
    default: {}
  vteps:
    description: Each node's VXLAN device (podnet_facts C(vtep)), whose C(address) a packet leaving by flannel.1 takes.
    type: dict
    default: {}
  traces:
    description: The podnet_trace results by node; given, the path is put together.
    type: dict
  located:
    description: The C(located) this module returned in the first step.
    type: dict
  policy_source:
    description: A node's policy record (podnet_facts C(policy_source)); null when none is enforced.
    type: dict
  lab:
    description:
      - The lab's name, each node's underlay address (C(underlay)) and the outside host's address (C(outside)),
        to read the fabric and to explain from the outside host; omit for real VMs.
    type: dict
  output:
    description: Write the result as JSON to this file (not in check mode).
    type: path
attributes:
  check_mode: {support: full}
  diff_mode: {support: none}
extends_documentation_fragment: [podnet.attributes]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Check the request and plan the traces.
  podnet_explain:
    pods_by_node: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars,
                      ['ansible_facts', 'podnet', 'pods']))) }}"
    from: default/netexec-a
    to: default/netexec-b
  run_once: true
  delegate_to: localhost
  register: located

- name: The same to the Service default/echo, following a chosen endpoint.
  podnet_explain:
    pods_by_node: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars,
                      ['ansible_facts', 'podnet', 'pods']))) }}"
    services_by_node: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars,
                          ['ansible_facts', 'podnet', 'services']))) }}"
    from: default/netexec-a
    to: svc/default/echo
    endpoint: default/echo-7d4b9c8f6d-x2x7k
  run_once: true
  delegate_to: localhost
  register: located
'''

RETURN = r'''
located:
  description:
    - The endpoints, port, protocol and C(legs) (node to its podnet_trace options).
    - To a Service, also C(service) (key, ClusterIP, port, endpoints, the endpoint followed and why);
      C(destination) is then the endpoint pod, C(port) its port after DNAT.
  returned: without traces
  type: dict
hops:
  description: The path in order, each C(at), C(says), C(problem).
  returned: with traces
  type: list
  elements: dict
lines:
  description: The path as text, one line per hop.
  returned: with traces
  type: list
  elements: str
  sample: [" 1  default/netexec-a eth0  ip route get 10.42.1.2: via 10.42.0.1 ..."]
stops_at:
  description: The first hop with a problem, or null.
  returned: with traces
  type: dict
verdict:
  description: allowed, and the NetworkPolicy reason.
  returned: with traces
  type: dict
agrees:
  description: Whether the probe's outcome matches the prediction.
  returned: with traces
  type: bool
'''

import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.core.errors import PodnetError
from ansible.module_utils.podnet.core.statefile import read_text, write_atomic
from ansible.module_utils.podnet.explain import explain, outsidepath, servicepath


def fabric_part(lab, src_node, dst_node, destination):
    """The fabric hops, read live in the lab fabric's namespace when the
    nodes are on a podnet lab: to the destination's node, or (no node) to
    the destination address itself."""
    from ansible.module_utils.podnet.explain import pathtrace
    from ansible.module_utils.podnet.kernel.netlink import rtnl
    from ansible.module_utils.podnet.lab import host, fabric
    pid = host.running_hosts(lab['name']).get(fabric.FABRIC) if lab else None
    target = (lab or {}).get('underlay', {}).get(dst_node) if dst_node else destination
    if pid is None or target is None:
        return explain.fabric_hops(None, src_node, dst_node, target)
    with rtnl('/proc/%d/ns/net' % pid) as ipr:
        return explain.fabric_hops(pathtrace.Netns(ipr), src_node, dst_node, target)


def outside_hops(lab, address):
    """The outside host's own route to the node's address, read live in
    its namespace."""
    from ansible.module_utils.podnet.explain import pathtrace
    from ansible.module_utils.podnet.kernel.netlink import rtnl
    from ansible.module_utils.podnet.lab import fabric, host
    pid = host.running_hosts(lab['name']).get(fabric.OUTSIDE)
    if pid is None:
        return [{'at': 'outside eth0', 'says': 'the outside host is not running', 'problem':
                 'no outside host of lab %s runs on this machine: bring the lab up (make up)' % lab['name']}]
    with rtnl('/proc/%d/ns/net' % pid) as ipr:
        ns = pathtrace.Netns(ipr)
        route, why = ns.route_get(address)
        says, down = ns.link_says('eth0')
    if route is None:
        return [{'at': 'outside eth0', 'says': 'ip route get %s' % address, 'problem': 'no route: %s' % why}]
    return [{'at': 'outside eth0', 'says': 'ip route get %s: via %s dev %s src %s; %s' % (
        address, route['via'], route['dev'], route['src'], says), 'problem': down}]


def in_host_netns(lab, name, work, *args):
    """work(*args) run in a thread that entered lab host name's network
    namespace (setns moves only the calling thread, so this process never
    leaves its own); None when the host is not running."""
    import threading
    from ansible.module_utils.podnet.kernel.linux import CLONE_NEWNET, libc
    from ansible.module_utils.podnet.lab import host
    pid = host.running_hosts(lab['name']).get(name)
    if pid is None:
        return None
    done = {}

    def inside():
        with open('/proc/%d/ns/net' % pid) as netns:
            if libc.setns(netns.fileno(), CLONE_NEWNET) != 0:
                done['error'] = 'cannot enter %s\'s network namespace' % name
                return
        done['result'] = work(*args)

    thread = threading.Thread(target=inside, daemon=True)
    thread.start()
    thread.join()
    if 'error' in done:
        raise OSError(done['error'])
    return done.get('result')


def outside_probe(lab, located, timeout=2.0):
    """One real connection from the outside host to the node's address and
    port, then, from the node's conntrack, the endpoint the kernel chose and
    the source it saw (the node's address when masqueraded)."""
    from ansible.module_utils.podnet.explain import pathtrace, prober
    from ansible.module_utils.podnet.explain.reachability import REFUSED
    from ansible.module_utils.podnet.lab import fabric
    service, client = located['service'], located['source']['ip']
    tried = in_host_netns(lab, fabric.OUTSIDE, prober.TRIES[service['protocol']], service['ip'],
                          service['port'], timeout)
    if tried is None:
        return {'outcome': 'not run: the outside host is not running', 'delivered': False,
                'seen_source': None, 'endpoint': None}
    allowed, outcome = tried
    delivered = allowed is True or outcome == REFUSED
    reply = in_host_netns(lab, service['node'], pathtrace.conntrack_reply, client, service['ip'],
                          service['port'], service['protocol'])
    if reply is None:  # a dropped or rejected connection leaves none; a delivered one should
        unread = ' (the node\'s conntrack entry was not read)' if delivered else ''
        return {'outcome': outcome + unread, 'delivered': delivered, 'seen_source': None, 'endpoint': None}
    return {'outcome': outcome, 'delivered': delivered, 'seen_source': reply.daddr if delivered else None,
            'endpoint': '%s:%s' % (reply.saddr, reply.sport)}


def assemble_outside(p):
    """The path from the outside host: its route, the fabric, the entry
    node's DNAT (and masquerade), the endpoint's node when another, the
    endpoint pod, the reverse NAT, then the probe run from here."""
    located, traces, lab = p['located'], p['traces'], p['lab']
    service, dst = located['service'], located['destination']
    entry = traces[service['node']]
    hops = outside_hops(lab, service['ip']) + fabric_part(lab, 'outside', service['node'], service['ip'])
    probe = outside_probe(lab, located)
    if service['endpoint'] is None:
        return _result(located, hops + entry['hops'], dict(entry, probe=probe), None,
                       rejected=entry.get('rejected', False))
    arrives = '%s eth0' % dst['key']
    hops += [h for h in entry['hops'] if h['at'] != arrives]
    client = located['source']['ip']
    # What the endpoint sees: the entry node's masquerade as its kernel gives it, else as predicted.
    seen = entry.get('masquerades_to') or service['sources'].get('%(ip)s:%(port)d' % service['endpoint']) or client
    judged = client
    if dst['node'] != service['node']:
        judged = located['legs'][dst['node']]['src']
        hops += fabric_part(lab, service['node'], dst['node'], dst['ip'])
        hops += outsidepath.read_as_hops(dst['node'], judged, seen)
        hops += [h for h in traces[dst['node']]['hops'] if h['at'] != arrives]
    decision, verdicts = outside_verdict(p['policy_source'], located, judged, seen)
    hops += verdicts + [h for t in traces.values() for h in t['hops'] if h['at'] == arrives]
    hops.append(outsidepath.reverse_nat_hop(service, client, seen))
    return _result(located, hops, dict(entry, probe=probe), decision)


def outside_verdict(policy_source, located, judged, seen):
    """The endpoint's ingress verdict, for the source the endpoint's node
    filters (its forward hook, before postrouting masquerades): the outside
    host's address with externalTrafficPolicy Local or an endpoint on the
    entry node, else the entry node's masquerade address. seen: what the
    endpoint sees."""
    source = dict(located['source'], key=judged, ip=judged)
    decision, verdicts = explain.policy_sides(policy_source, dict(located, source=source))
    if judged != located['source']['ip']:
        why = 'from %s, %s\'s masquerade' % (judged, located['service']['node'])
    elif judged != seen:
        why = 'from %s, judged in forward before postrouting masquerades it to %s' % (judged, seen)
    else:
        why = 'from %s, kept' % judged
    return decision, [dict(h, says='%s: %s' % (why, h['says'])) for h in verdicts
                      if h['at'] != 'NetworkPolicy egress']


def assemble(p):
    located, traces = p['located'], p['traces']
    if located.get('outside'):
        return assemble_outside(p)
    src, dst, service = located['source'], located['destination'], located.get('service')
    first = traces[src['node']]
    if service and service['endpoint'] is None:  # the DNAT hop stops it, before any policy judges
        return _result(located, first['hops'], first, None, rejected=first.get('rejected', False))
    decision, verdicts = explain.policy_sides(p['policy_source'], located)
    # The destination pod's own hop comes last, after its ingress verdict.
    arrives = '%s eth0' % dst['key']
    hops = [h for h in first['hops'] if h['at'] != arrives] + verdicts[:1]
    if dst.get('node') != src['node']:
        hops += fabric_part(p['lab'], src['node'], dst.get('node'), dst['ip'])
    if dst.get('node') and dst['node'] != src['node']:
        hops += [h for h in traces[dst['node']]['hops'] if h['at'] != arrives]
    hops += verdicts[1:] + [h for t in traces.values() for h in t['hops'] if h['at'] == arrives]
    if service:
        hops.append(servicepath.reverse_nat_hop(src['node'], service, src['ip']))
    return _result(located, hops, first, decision)


def _result(located, hops, first, decision, rejected=False):
    """The path with the probe's outcome last, where it stops, and whether
    the probe agrees with the prediction."""
    stop = explain.first_problem(hops)
    probe_hop, agrees = explain.outcome_hop(first['probe'], decision, stop is None, located, rejected)
    hops = hops + [probe_hop]
    return {'hops': hops, 'lines': explain.lines(hops), 'stops_at': stop, 'agrees': agrees,
            'verdict': {'allowed': decision.allowed, 'reason': decision.reason} if decision else None}


def networks(p):
    """{node: {backend, pod_cidr, vtep, underlay}}: where a packet the node
    masquerades leaves from (outsidepath.masquerade_source)."""
    underlay = (p['lab'] or {}).get('underlay') or {}
    return {node: {'backend': p['backends'].get(node), 'pod_cidr': p['pod_cidrs'].get(node),
                   'vtep': p['vteps'].get(node), 'underlay': underlay.get(node)}
            for node in set(p['backends']) | set(p['pod_cidrs']) | set(p['vteps']) | set(underlay)}


def main():
    module = AnsibleModule(
        argument_spec={'pods_by_node': dict(type='dict', required=True),
                       'from': dict(type='str', required=True), 'to': dict(type='str', required=True),
                       'port': dict(type='str'), 'protocol': dict(type='str'),
                       'backends': dict(type='dict', default={}), 'traces': dict(type='dict'),
                       'located': dict(type='dict'), 'policy_source': dict(type='dict'),
                       'lab': dict(type='dict'), 'output': dict(type='path'),
                       'services_by_node': dict(type='dict', default={}), 'endpoint': dict(type='str'),
                       'via': dict(type='str'), 'pod_cidrs': dict(type='dict', default={}),
                       'vteps': dict(type='dict', default={})},
        required_by={'traces': 'located'}, supports_check_mode=True)
    p = module.params
    try:
        if not p['traces']:
            request = explain.Request(p['from'], p['to'], p['port'], p['protocol'], p['endpoint'], p['via'])
            located = explain.locate(p['pods_by_node'], request, p['services_by_node'], p['lab'], networks(p))
            for node, leg in located['legs'].items():
                if 'source_pod' not in leg:
                    leg.setdefault('iif', 'flannel.1' if p['backends'].get(node) == 'vxlan' else 'underlay')
            module.exit_json(changed=False, located=located)
        result = assemble(p)
    except PodnetError as exc:
        module.fail_json(msg=str(exc), subject=exc.subject)
    changed = False
    if p['output']:
        text = json.dumps(result, indent=2, sort_keys=True) + '\n'
        changed = read_text(p['output']) != text
        if changed and not module.check_mode:
            write_atomic(p['output'], text)
    module.exit_json(changed=changed, **result)


if __name__ == '__main__':
    main()
