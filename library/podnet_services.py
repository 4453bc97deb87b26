#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: a node's Services, in nftables, as kube-proxy's nftables mode."""

DOCUMENTATION = r'''
---
module: podnet_services
short_description: Serve the cluster's Services on a node, in nftables, as kube-proxy's nftables mode
description:
  - Compiles every Service of the cluster, with the endpoints it has now, into one nftables table,
    C(ip podnet-services), laid out as kube-proxy's nftables mode lays out its own (KEP-3866)
    and loaded as one transaction. ClusterIPs and LoadBalancer ports (on the node's own address,
    as k3s's ServiceLB) dispatch through the verdict map C(service-ips), NodePorts through
    C(service-nodeports); a chain per Service port picks an endpoint with C(numgen random)
    (after ClientIP affinity sets), a chain per endpoint DNATs to it.
  - Endpoints are the running, ready pods of the Service's namespace that its selector matches
    (with C(publishNotReadyAddresses), the not ready too); a named C(targetPort) resolves per pod.
  - Masquerade only where kube-proxy masquerades. A Service without endpoints rejects new
    connections; an undeclared port of a ClusterIP is rejected, an unallocated ClusterIP dropped.
    With C(externalTrafficPolicy=Local), external traffic goes only to the node's own endpoints,
    keeping the client's address, and is dropped on a node with none.
  - Adds the route to the service CIDR through C(cni0), from the pods' gateway address, so the
    node's own processes reach ClusterIPs.
  - The table is checked by digest, not rule by rule. Next to the table the module keeps the text
    it loaded, the digest of the kernel's listing right after and the namespace's nftables generation
    then (C(services.json) in the state directory); while the generation holds, no table has changed
    and the table is not listed again (a second at 1,000 Services). A run changes the table when the
    text it would load differs, or when the listing no longer matches, which is someone else's change.
    Session-affinity entries are left out of the digest, since packets fill those sets. Loading a new
    table empties them.
  - Writes the cluster DNS zone, C(dns/records.json) in the state directory, from the same Services and
    endpoints; the cluster DNS pod (podnet-dns) answers from it.
  - O(state=absent) removes the table, the route, the record and the zone; it needs none of the other options.
options:
  services:
    description:
      - The cluster's Services as the cluster plan gives them (C(services_json)), a list or the same as JSON text.
    type: raw
  cluster:
    description:
      - The cluster's pods as the plan gives them in C(policy_cluster) (C(pods) with namespace, name, node,
        labels, ports, hostname and subdomain); a dict or the same as JSON text.
    type: raw
  running:
    description: The IP of every running pod by namespace/name (the nodes' podnet_pods C(ips)); a dict or JSON text.
    type: raw
  unready:
    description: Running pods that are not ready (the nodes' podnet_pods C(unready)); they are no endpoints.
    type: list
    elements: str
    default: []
  node:
    description: This node's inventory name (externalTrafficPolicy and internalTrafficPolicy Local).
    type: str
  node_ip:
    description: This node's own address, where its NodePorts and LoadBalancer ports are served.
    type: str
  pod_cidr:
    description: This node's pod CIDR; its gateway address is the source of the node's own traffic to ClusterIPs.
    type: str
  cluster_cidr:
    description: The cluster CIDR; traffic to a ClusterIP from outside it is masqueraded, as kube-proxy does.
    type: str
    default: 10.42.0.0/16
  state:
    description:
      - C(present) needs O(services), O(cluster), O(running), O(node), O(node_ip) and O(pod_cidr);
        C(absent) removes the table, the route, the record and the zone.
extends_documentation_fragment: [podnet]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Serve the cluster's Services on this node.
  podnet_services:
    services: "{{ podnet_plan.services_json }}"
    cluster: "{{ podnet_plan.policy_cluster }}"
    running: "{{ podnet_running }}"
    node: "{{ inventory_hostname }}"
    node_ip: 172.20.0.2
    pod_cidr: 10.42.0.0/24

- name: Remove the node's Services (a cluster reset).
  podnet_services:
    state: absent
'''

RETURN = r'''
actions:
  description: The change made (or due, in check mode) as verb, target and reason.
  returned: always
  type: list
  elements: list
  sample: [[set_table, ip podnet-services, the Services or their endpoints changed],
           [write_zone, /var/lib/podnet/dns/records.json, the Services or their endpoints changed]]
services:
  description:
    - Each Service as this node serves it, with each port's endpoints (pod, node, ip and port). The record
      C(services.json) in the state directory keeps the same, for podnet_facts and the path explainer.
  returned: state present
  type: dict
  sample: {default/web: {type: ClusterIP, cluster_ip: 10.43.12.7, affinity_timeout: null, external_local: false,
                         internal_local: false,
                         ports: [{name: http, protocol: TCP, port: 80, node_port: null,
                                  endpoints: [{pod: default/web-0, node: node1, ip: 10.42.0.5, port: 8080}]}]}}
'''

import hashlib
import json
import os
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.core.reconcile import NODE_STATE_OPTIONS, Action, Reconciler, from_text, run_module
from ansible.module_utils.podnet.core.statefile import read_checked, remove_any, write_atomic
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.kernel.netlink import RT_TABLE_MAIN, link_index, rtnl
from ansible.module_utils.podnet.node.network import BRIDGE
from ansible.module_utils.podnet.services import dns
from ansible.module_utils.podnet.services import endpoints as endpoints_of
from ansible.module_utils.podnet.services import record as services_record
from ansible.module_utils.podnet.services import ruleset
SERVED_FIELDS = ('type', 'cluster_ip', 'affinity_timeout', 'external_local', 'internal_local')
RTPROT_SERVICES = 201  # marks the service CIDR route (200, the backend's, marks its peers' routes)
RT_SCOPE_LINK = 253


class NodeServices(Reconciler):
    """The node's Services table, the service CIDR route and the record of
    what the table was loaded from, and the cluster DNS zone. text: the
    table's text, None with state absent; route: (destination, source);
    zone: the zone's text."""
    subject = 'podnet_services'

    def __init__(self, run, state_dir, text, route=None, zone=None, served=None):
        self.run, self.lock_dir, self.absent = run, state_dir, text is None
        self.text, self.route, self.zone, self.served = text, route, zone, served
        self.path = services_record.path(state_dir)
        self.zone_path = dns.path(state_dir)
        self.digest = None if text is None else hashlib.sha256(
            (text + json.dumps(served, sort_keys=True)).encode()).hexdigest()

    def read(self):
        record, problem = read_checked(self.path, json.loads)
        zone, zone_problem = read_checked(self.zone_path)
        return {'listing': self._listing(record if isinstance(record, dict) else {}),
                'record': None if problem else record, 'problem': problem, 'route': _route_now(),
                'zone': zone, 'zone_problem': zone_problem}

    def _listing(self, record):
        """The digest of the table's listing: the recorded one while the
        namespace's nftables generation is the one recorded right after the
        load (nothing changed any table since), else listed afresh."""
        if record.get('listing') and record.get('generation') == nft.generation():
            return record['listing']
        return nft.listing_digest(self.run, ruleset.FAMILY, ruleset.NAME)

    def plan(self, current):
        if self.absent:
            actions = [Action('delete_table', ruleset.TABLE, 'state absent')] if current['listing'] else []
            if current['route']:
                actions.append(Action('delete_route', current['route'], 'state absent'))
            if current['record'] is not None or current['problem']:
                actions.append(Action('forget_record', self.path, 'state absent'))
            if os.path.lexists(os.path.dirname(self.zone_path)):
                actions.append(Action('forget_zone', os.path.dirname(self.zone_path), 'state absent'))
            return actions
        actions = []
        why = self._why_load(current)
        if why:
            actions.append(Action('set_table', ruleset.TABLE, why))
        if current['route'] != self._route_text():
            actions.append(Action('set_route', self._route_text(), 'missing' if not current['route']
                                  else 'is %s' % current['route']))
        if current['zone'] != self.zone:
            why = current['zone_problem'] or ('missing' if current['zone'] is None
                                              else 'the Services or their endpoints changed')
            actions.append(Action('write_zone', self.zone_path, why))
        return actions

    def _why_load(self, current):
        record = current['record'] or {}
        if current['listing'] is None:
            return 'missing'
        if current['record'] is None:
            return 'the record of what it was loaded from (%s) is %s' % (self.path, current['problem'] or 'missing')
        if record.get('listing') != current['listing']:
            return 'changed outside podnet since podnet loaded it'
        if record.get('digest') != self.digest:
            return 'the Services or their endpoints changed'
        return None

    def _route_text(self):
        return '%s dev %s src %s' % (self.route[0], BRIDGE, self.route[1])

    def wanted(self, current):
        return {'table': self.text, 'route': None if self.absent else self._route_text(), 'zone': self.zone}

    def show(self, state):
        if 'listing' in state:  # the current state: the text podnet loaded, if the kernel still holds it
            record = state['record'] or {}
            table = (record.get('text') if record.get('listing') == state['listing'] and state['listing']
                     else nft.list_text(self.run, ruleset.FAMILY, ruleset.NAME))
            state = {'table': table, 'route': state['route'], 'zone': state['zone']}
        return {ruleset.TABLE: _lines(state['table']), 'route': state['route'], 'dns zone': _names(state['zone'])}

    def do_set_table(self, _action, _current):
        nft.load_text(self.run, ruleset.FAMILY, ruleset.NAME, self.text)
        listing, generation = nft.listing_digest(self.run, ruleset.FAMILY, ruleset.NAME), nft.generation()
        write_atomic(self.path, json.dumps({'digest': self.digest, 'listing': listing, 'generation': generation,
                                            'text': self.text, 'services': self.served}))

    def do_write_zone(self, _action, _current):
        os.makedirs(os.path.dirname(self.zone_path), exist_ok=True)
        write_atomic(self.zone_path, self.zone)

    def do_forget_zone(self, _action, _current):
        remove_any(os.path.dirname(self.zone_path))  # the folder the DNS pod mounts, too

    def do_delete_table(self, _action, _current):
        nft.apply(self.run, nft.delete_commands(ruleset.FAMILY, ruleset.NAME), ruleset.TABLE)

    def do_forget_record(self, _action, _current):
        remove_any(self.path)

    def do_set_route(self, _action, _current):
        destination, source = self.route
        with rtnl() as ipr:
            index = link_index(ipr, BRIDGE)
            if index is None:
                raise SpecError(BRIDGE, 'no pod bridge on this node: run the network role first')
            ipr.route('replace', dst=destination, oif=index, prefsrc=source, proto=RTPROT_SERVICES,
                      scope=RT_SCOPE_LINK, table=RT_TABLE_MAIN)

    def do_delete_route(self, _action, _current):
        with rtnl() as ipr:
            for route in ipr.get_routes(family=socket.AF_INET, table=RT_TABLE_MAIN, proto=RTPROT_SERVICES):
                # The route's own scope: the kernel deletes only a route of the scope asked
                # (or of any, 255), and pyroute2 asks for universe (0) by default.
                ipr.route('del', dst='%s/%d' % (route.get('RTA_DST'), route['dst_len']),
                          proto=RTPROT_SERVICES, table=RT_TABLE_MAIN, scope=route['scope'])

    def result(self, current, actions):
        return {} if self.absent else {'services': self.served}


def _lines(text):
    """A table's text as the diff shows it: a line each, without the
    indentation (nft's listing aligns elements its own way), blank lines
    dropped, so the text podnet loads and the kernel's listing compare."""
    return [line.strip() for line in text.splitlines() if line.strip()] if text else None


def _names(zone):
    """The zone's names and records, as the diff shows them."""
    try:
        return json.loads(zone)['names'] if zone else None
    except (ValueError, KeyError, TypeError):
        return zone


def _route_now():
    """The service CIDR route as `dst dev X src Y`, None when there is none."""
    with rtnl() as ipr:
        routes = ipr.get_routes(family=socket.AF_INET, table=RT_TABLE_MAIN, proto=RTPROT_SERVICES)
        names = {link['index']: link.get('IFLA_IFNAME') for link in ipr.get_links()} if routes else {}
    for route in routes:
        return '%s/%d dev %s src %s' % (route.get('RTA_DST'), route['dst_len'], names.get(route.get('RTA_OIF')),
                                        route.get('RTA_PREFSRC'))
    return None


def compile_for(p):
    """(table text, zone text, served(): the Services as this node serves them)."""
    services = from_text('services', p['services'], list)
    cluster = from_text('cluster', p['cluster'], dict)
    if 'pods' not in cluster:
        raise SpecError('cluster', 'missing pods')
    found = endpoints_of.resolve(services, cluster['pods'], from_text('running', p['running'], dict),
                                 p['unready'])
    text = ruleset.compile_node(services, found, p['node'], p['node_ip'], p['cluster_cidr'])
    zone = json.dumps(dns.records(services, found), indent=1, sort_keys=True) + '\n'
    return text, zone, served(services, found)


def served(services, found):
    """{service: {type, cluster_ip, affinity_timeout, external_local, internal_local,
    ports: [{name, protocol, port, node_port, endpoints: [{pod, node, ip, port}]}]}}."""
    summary = {}
    for service in services:
        key = '%(namespace)s/%(name)s' % service
        ports = [dict({k: port[k] for k in ('name', 'protocol', 'port', 'node_port')}, endpoints=[
            {'pod': e['pod'], 'node': e['node'], 'ip': e['ip'], 'port': e['ports'][endpoints_of.port_key(port)]}
            for e in found[key] if endpoints_of.port_key(port) in e['ports']]) for port in service['ports']]
        summary[key] = dict({k: service[k] for k in SERVED_FIELDS},
                            ports=ports)
    return summary


def services_of(module):
    p = module.params
    if p['state'] == 'absent':
        return NodeServices(module.run_command, p['state_dir'], None)
    text, zone, summary = compile_for(p)
    return NodeServices(module.run_command, p['state_dir'], text, ruleset.service_cidr_route(p['pod_cidr']),
                        zone, summary)


def main():
    module = AnsibleModule(
        argument_spec=dict(services=dict(type='raw'), cluster=dict(type='raw'), running=dict(type='raw'),
                           unready=dict(type='list', elements='str', default=[]),
                           node=dict(type='str'), node_ip=dict(type='str'), pod_cidr=dict(type='str'),
                           cluster_cidr=dict(type='str', default='10.42.0.0/16'), **NODE_STATE_OPTIONS),
        required_if=[('state', 'present', ('services', 'cluster', 'running', 'node', 'node_ip', 'pod_cidr'))],
        supports_check_mode=True)
    run_module(module, services_of)


if __name__ == '__main__':
    main()
