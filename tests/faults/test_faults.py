"""Faults of the pod network and its pods, injected on a converged cluster.

For each fault, in batches (one --check, one healing run, one stable run
per batch, as CI time allows):
- the conformance check of the guarantee it breaks passes before it is
  injected and fails after: the fault, not an earlier one, broke it;
- `site.yml --check --diff` reports a change on its node and names the
  object (pod, link, table, sysctl) in that node's output;
- a re-run heals it: the same conformance check passes again;
- a second re-run reports changed=0.

Within a batch faults sit on distinct pods, and node faults on distinct
nodes or in an order where the earlier ones cannot break the later ones'
checks (ip_forward goes last). The victims are pods of their own, pinned to
their nodes. Each batch gets a fresh lab; a fault whose healing run fails
for the whole cluster (a dead container, issue 7 defect 2) has a batch of
its own, so that it cannot hide how the others fare.
"""
import re
from dataclasses import dataclass, field

import pytest
from conformance import test_g1_pod_ip as g1
from conformance import test_g2_pod_sandbox as g2
from conformance import test_g4_nodes_and_pods as g4
from conformance import test_g6_masquerade as g6
from conformance import test_g7_mtu as g7
from conformance import test_node_base as node_base
from conformance import test_pod_isolation as isolation
from conformance.conftest import GridRecorder, Sample
from faults.conftest import (POD_MTU, STATE_DIR, changed_output, errors, fresh_cluster,
                             node_problems, pod, recap, server, verdict, write_manifest)

EVERY = Sample()  # the checks visit every pod and pair they are given

pytestmark = pytest.mark.lab

OUTSIDE = '203.0.113.10'  # the inventory's podnet_lab.outside.host_ip
WRONG_MTU = 1400


@dataclass
class Fault:
    group: str
    name: str
    node: str
    inject: str          # shell on the node, formatted with the victim's record
    probe: object        # probe(cluster, fault): raises AssertionError when broken
    evidence: list       # regexes the node's --check output must all match
    pod: str = None      # the victim pod, when the fault is in one
    found: dict = field(default_factory=dict)


def victim(cluster, fault):
    """{key: PodUnderTest} of the fault's pod as its node records it now."""
    found = cluster.pods(fault.node).get(fault.pod)
    assert found, 'no record of pod %s on %s' % (fault.pod, fault.node)
    return {found.key: found}


def peers(cluster, *nodes):
    """{key: PodUnderTest} of the probe peers (pods peer-<node>) on nodes."""
    found = [cluster.pods(n).get('peer-' + n) for n in nodes]
    assert all(found), 'a probe peer has no record: %s' % found
    return {p.key: p for p in found}


def pause_held(c, f):
    g2.test_a_pause_process_holds_the_sandbox(victim(c, f), EVERY)


def serves_http(c, f):
    g4.test_every_node_talks_http_to_every_server_pod({f.node: c.hosts[f.node]},
                                                      list(victim(c, f).values()))


def node_reaches_pod(c, f):
    g1.test_every_node_reaches_every_pod({f.node: c.hosts[f.node]}, victim(c, f), EVERY)


def pod_reaches_node(c, f):
    g4.test_every_pod_reaches_every_node(victim(c, f), {f.node: c.underlay(f.node)}, EVERY)


def ip_on_eth0(c, f):
    g1.test_the_pod_ip_sits_on_the_pod_eth0(victim(c, f), EVERY)


def mtu_consistent(c, f):
    pods = victim(c, f) if f.pod else {}
    g7.test_mtu_is_consistent_on_every_hop({f.node: c.hosts[f.node]}, pods, {f.node: POD_MTU}, EVERY)


def masqueraded(c, f):
    g6.test_the_outside_host_sees_the_node_address(peers(c, f.node), {f.node: c.underlay(f.node)},
                                                   OUTSIDE, EVERY)


def across_nodes(other):
    def probe(c, f):
        g1.test_every_pod_reaches_every_other_pod(peers(c, f.node, other), GridRecorder(), EVERY)
    return probe


def vxlan_closed(c, f):
    """No pod gets a forged packet unwrapped by f.node: not the fault's pod
    on that node, nor one from another node."""
    pods = dict(victim(c, f), **peers(c, f.node, 'node1'))
    isolation.test_a_pod_cannot_inject_vxlan_into_any_node(
        pods, {n: c.hosts[n] for n in (f.node, 'node1')}, {n: c.underlay(n) for n in (f.node, 'node1')},
        pod_cidrs(c))


def forwards(c, f):
    node_base.test_every_node_forwards_inside_its_own_namespace({f.node: c.hosts[f.node]})


def addresses_unique_and_reserved(c, f):
    """G1's unique pod IPs rest on IPAM knowing every address in use: a lost
    reservation is handed out again at the next allocation."""
    g1.test_each_pod_ip_is_unique_and_from_its_node_cidr(c.all_pods(), pod_cidrs(c))
    problems = [p for p in node_problems(f.node, c.hosts[f.node])[0] if 'IPAM' in p]
    assert problems == [], problems


def pod_cidrs(c):
    return {n: h.check_output('cat %s/pod-cidr' % STATE_DIR) for n, h in c.hosts.items()}


IN_POD = 'ip netns exec {netns} '
# The route goes with the old address; put it back, so only the address is wrong.
CHANGE_ADDRESS = ("sh -c 'ip addr del {ip}/24 dev eth0 && ip addr add {other_ip}/24 dev eth0 "
                  "&& ip route add default via {gateway}'")
FDB_AND_NEIGH = ("sh -c 'bridge fdb show dev flannel.1 | while read mac _ addr _; do "
                 "bridge fdb del $mac dev flannel.1 dst $addr; done; "
                 "ip neigh flush dev flannel.1 nud permanent'")
# In injection order: pods first, then node faults, ip_forward last.
FAULTS = [
    Fault('pods', 'kill pause', 'node1', 'kill -9 {pause}', pause_held, ['f-pause'], 'f-pause'),
    Fault('container', 'kill a container', 'node1', 'kill -9 {main}', serves_http,
          ['f-container'], 'f-container'),
    Fault('pods', 'delete a veth', 'node1', 'ip link del {veth}', node_reaches_pod,
          ['f-veth'], 'f-veth'),
    Fault('pods', 'delete the default route in a pod', 'node2', IN_POD + 'ip route del default',
          pod_reaches_node, ['f-route'], 'f-route'),
    Fault('pods', 'change the address in a pod', 'node2', IN_POD + CHANGE_ADDRESS, ip_on_eth0,
          ['f-addr'], 'f-addr'),
    Fault('pods', 'wrong MTU on a pod veth', 'node2', 'ip link set {veth} mtu %d' % WRONG_MTU,
          mtu_consistent, ['f-mtu'], 'f-mtu'),
    Fault('pods', 'delete IPAM files', 'node3', "sh -c 'rm -rf %s/ipam/*'" % STATE_DIR,
          addresses_unique_and_reserved, [r'(?i)ipam|{ip}'], 'peer-node3'),
    Fault('nodes', 'delete flannel.1', 'node1', 'ip link del flannel.1', across_nodes('node2'),
          [r'flannel\.1']),
    Fault('nodes', 'delete FDB and neighbour entries', 'node2', FDB_AND_NEIGH,
          across_nodes('node3'), ['fdb', 'neigh', r'10\.13\.1\.13']),
    Fault('nodes', 'delete the vxlan guard', 'node2', 'nft delete table inet podnet-vxlan', vxlan_closed,
          ['podnet-vxlan'], 'f-vxlan'),
    Fault('nodes', 'flush nft ruleset', 'node3', 'nft flush ruleset', masqueraded,
          ['podnet-nat|masquerade']),
    Fault('nodes', 'wrong MTU on cni0', 'node3', 'ip link set cni0 mtu %d' % WRONG_MTU,
          mtu_consistent, ['cni0|"bridge"', str(WRONG_MTU)]),
    Fault('nodes', 'ip_forward off', 'node3', 'sysctl -w net.ipv4.ip_forward=0', forwards,
          ['ip_forward']),
]


def workload(tmp_path):
    """Victims and probe peers pinned to their nodes, and the newcomer the
    healing run adds on the node whose IPAM files were lost."""
    pods = [(server if f.probe is serves_http else pod)(f.pod, f.node)
            for f in FAULTS if f.pod and f.pod.startswith('f-')]
    pods += [pod('peer-' + n, n) for n in ('node1', 'node2', 'node3')]
    return (write_manifest(tmp_path / 'victims.yaml', pods),
            write_manifest(tmp_path / 'newcomer.yaml', [pod('f-newcomer', 'node3')]))


def record_fields(cluster, fault):
    if not fault.pod:
        return {}
    (found,) = victim(cluster, fault).values()
    prefix = found.ip.rsplit('.', 1)[0]
    return dict(netns=found.netns, veth=found.veth, pause=found.pause_pid, ip=found.ip,
                other_ip=prefix + '.250', gateway=prefix + '.1', **found.containers)


def probe_error(cluster, fault):
    """None if the conformance check passes, else why it fails."""
    try:
        fault.probe(cluster, fault)
    except Exception as broken:  # noqa: BLE001 - testinfra raises more than AssertionError
        return '%s: %s' % (type(broken).__name__, str(broken)[:300])
    return None


def inject(cluster, fault):
    fields = record_fields(cluster, fault)
    fault.found['baseline'] = probe_error(cluster, fault)
    cluster.hosts[fault.node].check_output(fault.inject.format(**fields))
    fault.found['in_place'] = probe_error(cluster, fault)
    fault.found['evidence'] = [e.format(**fields) for e in fault.evidence]


def judge_check(fault, check):
    counts = recap(check).get(fault.node, {})
    text = changed_output(check).get(fault.node, '')
    missing = [e for e in fault.found['evidence'] if not re.search(e, text, re.M)]
    fault.found['detected'] = (counts.get('changed', 0) > 0 and not counts.get('failed')
                               and not missing)
    fault.found['check'] = 'recap %s, missing %s in:\n%s' % (counts, missing, text[-1500:])


class Batches(dict):
    """{group: {fault name: Fault}}, each group run once, when first asked for.
    (A module-scoped fixture parametrized per test would run once per test.)"""

    def __init__(self, tmp_path):
        super().__init__()
        self.tmp_path = tmp_path

    def __missing__(self, group):
        try:
            self[group] = run_batch([f for f in FAULTS if f.group == group], self.tmp_path)
        except Exception as failed:  # noqa: BLE001 - kept, so that the batch runs once
            self[group] = failed
        return self[group]

    def fault(self, group, name):
        found = self[group]
        if isinstance(found, Exception):
            raise found
        return found[name]


def run_batch(faults, tmp_path):
    """On a fresh lab, inject every fault of a group, then one --check, one
    healing run, one stable run."""
    victims, newcomer = workload(tmp_path)
    with fresh_cluster() as cluster:
        first = cluster.site(victims)
        assert first.returncode == 0, first.stdout[-3000:]
        for fault in faults:
            inject(cluster, fault)
        check = cluster.site(victims, args=('--check', '--diff'))
        heal = cluster.site(victims, newcomer)
        stable = cluster.site(victims, newcomer)
        for fault in faults:
            judge(fault, cluster, check, heal, stable)
    return {f.name: f for f in faults}


@pytest.fixture(scope='module')
def batches(tmp_path_factory):
    return Batches(tmp_path_factory.mktemp('faults'))


def judge(fault, cluster, check, heal, stable):
    judge_check(fault, check)
    fault.found['healed'] = probe_error(cluster, fault)
    fault.found['heal_errors'] = errors(heal.stdout)
    fault.found['stable'] = recap(stable).get(fault.node, {})
    tally(fault)


def tally(fault):
    found = fault.found
    verdict(fault.name, caught=found['in_place'] is not None, detected=found['detected'],
            healed=found['healed'] is None,
            stable=found['stable'].get('changed') == 0 and not found['stable'].get('failed'))


@pytest.mark.parametrize('group, name', sorted((f.group, f.name) for f in FAULTS))
def test_fault_is_detected_healed_and_caught(batches, group, name):
    found = batches.fault(group, name).found
    assert found['baseline'] is None, 'the check failed before the fault: %s' % found['baseline']
    assert found['in_place'], 'the conformance check passed with the fault in place'
    assert found['detected'], '--check did not report it on its node, naming it: %s' % (
        found['check'])
    assert found['healed'] is None, 'not healed: %s\nthe healing run said:\n%s' % (
        found['healed'], found['heal_errors'])
    assert found['stable'].get('changed') == 0 and not found['stable'].get('failed'), (
        'the second re-run: %s' % found['stable'])
