"""Conformance fixtures: the nodes and pods of whatever inventory the suite
runs against (`--ansible-inventory`, PODNET_INVENTORY, or inventories/lab).

Pods are read from each node's own records (/var/lib/podnet/pods), then
every check runs inside pods and nodes through SSH, as a user would.
"""
import json

import pytest
from podnet_testlib import inventory_nodes, testinfra_host

STATE_DIR = '/var/lib/podnet'
RECORD_END = '\x1e'


class PodUnderTest:
    """A pod as its node records it, with ways to run commands inside."""

    def __init__(self, node, host, record):
        self.node = node
        self.host = host
        self.key = '%s/%s' % (record['namespace'], record['name'])
        self.name = record['name']
        self.ip = record['ip']
        self.mac = record.get('mac')
        self.netns = record['netns']
        self.veth = record['veth']
        self.pause_pid = record['pause']['pid']
        self.containers = {n: p['pid'] for n, p in record['containers'].items()}

    def __repr__(self):
        return '<pod %s on %s %s>' % (self.key, self.node, self.ip)

    def run(self, command, *args):
        """Run in the pod's network namespace (as `ip netns exec` does)."""
        return self.host.run('ip netns exec %s ' % self.netns + command, *args)

    def unreachable(self, addresses):
        """Addresses this pod's pings do not reach (one SSH round trip)."""
        return unreachable(self.host, addresses, 'ip netns exec %s ' % self.netns)

    def run_in(self, container, command, *args):
        """Run inside one container: all of its namespaces."""
        return self.host.run('nsenter -t %s -n -u -i -p -m ' % self.containers[container] + command,
                             *args)


def unreachable(host, addresses, prefix=''):
    """Of addresses, those a ping from host (optionally inside a netns via
    prefix) does not reach; pinged in parallel, one SSH round trip."""
    loop = ('for a in %s; do (%sping -c1 -W2 -q "$a" >/dev/null 2>&1 || echo "$a") & done; wait'
            % (' '.join(addresses), prefix))
    return host.check_output("sh -c '%s'" % loop).split()


def read_pods(name, host):
    out = host.check_output("sh -c 'for f in %s/pods/*.json; do [ -f \"$f\" ] && cat \"$f\" "
                            "&& printf \"%s\"; done; true'" % (STATE_DIR, RECORD_END))
    return [PodUnderTest(name, host, json.loads(r)) for r in out.split(RECORD_END) if r.strip()]


@pytest.fixture(scope='session')
def node_vars(inventory):
    return inventory_nodes(inventory)


@pytest.fixture(scope='session')
def nodes(node_vars):
    """{name: testinfra host} of every node."""
    return {name: testinfra_host(v) for name, v in node_vars.items()}


@pytest.fixture(scope='session')
def pod_cidrs(nodes):
    return {name: host.file(STATE_DIR + '/pod-cidr').content_string.strip()
            for name, host in nodes.items()}


@pytest.fixture(scope='session')
def pods(nodes):
    """{namespace/name: PodUnderTest} of every pod in the cluster."""
    found = {}
    for name, host in nodes.items():
        found.update({p.key: p for p in read_pods(name, host)})
    if not found:
        pytest.fail('the cluster runs no pods: converge playbooks/site.yml first')
    return found


@pytest.fixture(scope='session')
def servers(pods):
    """Pods serving agnhost netexec on 8080 (the seed's netexec-*)."""
    found = [p for p in pods.values() if 'netexec' in p.containers]
    if len(found) < 2:
        pytest.fail('need the seed netexec pods (manifests/seed/netexec.yaml)')
    return found


@pytest.fixture(scope='session')
def underlay(node_vars, nodes):
    """{node: underlay address}, from the inventory or the node's default route."""
    found = {}
    for name, host in nodes.items():
        address = node_vars[name].get('podnet_underlay_ip')
        if not address:
            address = host.check_output("ip -4 -o route get 1.1.1.1 | sed 's/.* src \\([^ ]*\\).*/\\1/'")
        found[name] = address
    return found


def pytest_collection_modifyitems(items):
    """G5 replaces the cluster's pods with the netpol model (when enabled):
    its tests run last, after every check of the pods the cluster was
    converged with. The sort is stable: all else keeps its order."""
    items.sort(key=lambda item: item.path.name == 'test_network_policy.py')
