#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: try every pod pair from inside the pods of one node."""

DOCUMENTATION = r'''
---
module: podnet_probe
short_description: Probe reachability from a node's pods to every pod, per port and protocol
description:
  - Runs on a node. For every source pod given (the pods of this node), every target
    pod, port and protocol, a pod to itself included, decides whether the traffic is
    allowed, from inside the source pod's network namespace, as the Kubernetes netpol
    e2e tests probe with C(agnhost connect).
  - TCP and SCTP are allowed when a connection is made within C(timeout). UDP is
    allowed when any datagram answers C(hostname\n) within C(timeout) (agnhost
    C(serve-hostname --udp) answers every datagram; a second one is sent halfway).
    Any failure (timeout, refused, unreachable) is denied.
  - When the kernel has no SCTP, every SCTP cell is C(allowed=null) with a reason
    starting with C(unsupported), instead of allowed or denied.
  - Probes run concurrently in worker threads, each entering its source's namespace
    with the setns system call, which moves only that thread; the module's own thread stays in
    the node's namespace. Python standard library and ctypes only.
  - With O(probe_services), also probes from every source to each port of those Services at
    the ClusterIP and port, as a client connects (the node DNATs it to an endpoint); the result's
    target is C(svc <namespace>/<name>:<port>). The Services come from O(services); an unknown
    Service, or a headless one named, fails before any probe, naming O(probe_services).
  - Changes nothing, so it runs in check mode too.
options:
  sources:
    description: The pods to probe from, with their sandbox C(cni-<id>) in C(/run/netns).
    type: list
    elements: dict
    required: true
    suboptions:
      key: {description: 'The pod, as namespace/name.', type: str, required: true}
      netns: {description: 'Its sandbox, C(cni-<id>).', type: str, required: true}
  targets:
    description: The pods to probe, with their IPs.
    type: list
    elements: dict
    required: true
    suboptions:
      key: {description: 'The pod, as namespace/name.', type: str, required: true}
      ip: {description: Its IPv4 address., type: str, required: true}
  ports: {description: Ports to probe on every target., type: list, elements: int, required: true}
  protocols:
    description: Protocols to probe on every port.
    type: list
    elements: str
    choices: [TCP, UDP, SCTP]
    default: [TCP]
  services:
    description:
      - The Services a node serves (podnet_facts C(services)), to find the ClusterIPs and ports of O(probe_services).
    type: dict
  probe_services:
    description:
      - The Services to probe, as namespace/name, or C(all) for every Service with a ClusterIP; empty, none.
    type: list
    elements: str
    default: []
  timeout: {description: Seconds before a probe counts as denied., type: float, default: 1.0}
  concurrency: {description: Probes in flight at once (worker threads)., type: int, default: 64}
attributes:
  check_mode: {support: full}
  diff_mode: {support: none}
extends_documentation_fragment: [podnet.attributes]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Probe from this node's pods to every pod on ports 80 and 81, TCP and UDP.
  podnet_probe:
    sources: [{key: x/a, netns: cni-607c5530-b6d8-ba57-420e-a467d7b10c56}]
    targets: [{key: x/a, ip: 10.42.0.7}, {key: y/b, ip: 10.42.1.4}]
    ports: [80, 81]
    protocols: [TCP, UDP]
  register: probe

- name: Probe from this node's pods to the pods on port 8080 and to every port of the Service default/echo.
  podnet_probe:
    sources: "{{ my_sources }}"
    targets: "{{ my_targets }}"
    ports: [8080]
    services: "{{ ansible_facts.podnet.services }}"
    probe_services: [default/echo]

- name: Probe SCTP with a shorter timeout (cells are unsupported on a kernel without SCTP).
  podnet_probe:
    sources: "{{ my_sources }}"
    targets: "{{ my_targets }}"
    ports: [80]
    protocols: [SCTP]
    timeout: 0.5
'''

RETURN = r'''
results:
  description:
    - One cell per source, target, port and protocol. C(allowed) is true, false, or null
      when not decided (SCTP unsupported, sandbox not enterable); C(reason) says why.
  returned: success
  type: list
  elements: dict
  sample: [{from: x/a, to: y/b, port: 80, protocol: TCP, allowed: true, reason: connected},
           {from: x/a, to: y/b, port: 80, protocol: UDP, allowed: false, reason: timeout},
           {from: x/a, to: y/b, port: 80, protocol: SCTP, allowed: null,
            reason: "unsupported: this kernel has no SCTP sockets (protocol not supported)"},
           {from: x/a, to: "svc default/echo:80", port: 80, protocol: TCP, allowed: true, reason: connected}]
elapsed:
  description: Seconds the probes took.
  returned: success
  type: float
  sample: 0.21
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.core.errors import PodnetError
from ansible.module_utils.podnet.explain import prober, servicetargets

KEYED = dict(key=dict(type='str', required=True, no_log=False))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sources=dict(type='list', elements='dict', required=True,
                         options=dict(KEYED, netns=dict(type='str', required=True))),
            targets=dict(type='list', elements='dict', required=True,
                         options=dict(KEYED, ip=dict(type='str', required=True))),
            ports=dict(type='list', elements='int', required=True),
            protocols=dict(type='list', elements='str', choices=list(prober.PROTOCOLS),
                           default=['TCP']),
            services=dict(type='dict'),
            probe_services=dict(type='list', elements='str', default=[]),
            timeout=dict(type='float', default=1.0),
            concurrency=dict(type='int', default=64)),
        supports_check_mode=True)
    p = module.params
    if p['timeout'] <= 0 or p['concurrency'] < 1:
        module.fail_json(msg='timeout must be above 0 and concurrency at least 1, got %s and %s'
                         % (p['timeout'], p['concurrency']))
    started = time.monotonic()
    try:
        services = servicetargets.plan(p['services'], p['probe_services'])
        probes = prober.plan(p['sources'], p['targets'], p['ports'], p['protocols'], services)
        results = prober.run(probes, p['timeout'], p['concurrency'])
    except PodnetError as exc:
        module.fail_json(msg=str(exc), subject=exc.subject)
    module.exit_json(changed=False, results=results,
                     elapsed=round(time.monotonic() - started, 3))


if __name__ == '__main__':
    main()
