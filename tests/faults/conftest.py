"""Fault suite fixtures: one lab of its own (tests/faults/inventory, lab
`faults`) for the whole session, the workloads it runs, the playbook runs
and their output read per node, the node state every phase checks, and the
tally printed at the end of the run.

The suite proves the contract of issue 7: a fault is seen by --check, healed
by a re-run, after which a second re-run changes nothing; the conformance
check of the guarantee it breaks fails while it is in place.
"""
import collections
import contextlib
import json
import re
from pathlib import Path

import pytest
from conformance.conftest import read_pods
from integration.conftest import playbook, recap, running_lab  # noqa: F401 (recap: for the tests)

INVENTORY = Path(__file__).resolve().parent / 'inventory'
LAB = 'faults'
STATE_DIR = '/var/lib/podnet'
POD_MTU = 1450  # the inventory's underlay MTU 1500 minus vxlan's 50
STATUS = re.compile(r'^(changed|ok|fatal|failed|skipping): \[(\S+?)(?: -> \S+)?\]', re.M)

# What the run proved, printed by pytest_terminal_summary: counts, and one
# line per fault (a test stops at its first failed assertion; this does not).
TALLY = collections.Counter()
VERDICTS = []
TALLY_LINES = [('detected', 'faults detected by --check'), ('healed', 'faults healed by a re-run'),
               ('caught', 'faults caught by the conformance check'),
               ('recovered', 'crash points recovered'), ('concurrent', 'concurrent runs handled')]


def pod(name, node=None, command=('sleep', '365d'), image='busybox', args=None):
    """A Pod manifest in namespace default, pinned to node when given."""
    container = {'name': 'main', 'image': image, 'command': list(command)}
    if args:
        container = {'name': 'main', 'image': image, 'args': list(args)}
    spec = {'containers': [container]}
    if node:
        spec['nodeName'] = node
    return {'apiVersion': 'v1', 'kind': 'Pod',
            'metadata': {'name': name, 'namespace': 'default'}, 'spec': spec}


def server(name, node):
    """An agnhost netexec pod: answers /hostname and /clientip on 8080."""
    return pod(name, node, image='registry.k8s.io/e2e-test-images/agnhost:2.47',
               args=['netexec', '--http-port=8080'])


def write_manifest(path, pods):
    path.write_text('\n---\n'.join(json.dumps(p) for p in pods))
    return str(path)


class FaultLab:
    """The suite's lab with the manifests it converges."""

    def __init__(self, lab, base):
        self.lab = lab
        self.hosts = lab.hosts
        self.vars = lab.vars
        self.base = base

    def site_args(self, *manifests):
        """ansible-playbook arguments: site.yml over the base manifests plus these."""
        wanted = json.dumps({'podnet_manifests': self.base + [str(m) for m in manifests]})
        return ['-i', str(self.lab.inventory), 'playbooks/site.yml', '-e', wanted]

    def site(self, *manifests, args=(), check=False):
        """Run site.yml (see site_args) to its end; the finished process."""
        return playbook(*self.site_args(*manifests)[1:], *args, check=check)

    def underlay(self, node):
        return self.vars[node]['podnet_underlay_ip']

    def pods(self, node):
        """{name: PodUnderTest} as the node's records say now."""
        return {p.name: p for p in read_pods(node, self.hosts[node])}

    def all_pods(self):
        return {'%s/%s' % (n, p.name): p for n in self.hosts for p in read_pods(n, self.hosts[n])}


@contextlib.contextmanager
def fresh_cluster():
    """A lab of its own with the seed as base manifests, torn down after
    with zero residue. A phase converges it with its own workload first (one
    run, not two). Bring-up takes seconds, so each phase gets a fresh one: a
    phase that leaves a node broken cannot fail the next for the wrong reason."""
    lab = running_lab(str(INVENTORY), LAB)
    try:
        yield FaultLab(next(lab), ['manifests/seed'])
    finally:
        next(lab, None)


@pytest.fixture(scope='module')
def cluster():
    with fresh_cluster() as found:
        yield found


def errors(output):
    """The lines of a run's output that say what failed."""
    return '\n'.join(line[:400] for line in output.splitlines() if line.startswith(('fatal', '[ERROR]')))


def changed_output(done):
    """{host: text of every task that reported it changed or failed}: the
    diff lines printed above each `changed: [host]` belong to that host."""
    found = collections.defaultdict(str)
    start = 0
    for match in STATUS.finditer(done.stdout):
        if match.group(1) in ('changed', 'fatal', 'failed'):
            found[match.group(2)] += done.stdout[start:match.end()] + '\n'
            found[match.group(2)] += done.stdout[match.end():done.stdout.find('\n', match.end())]
        start = match.end()
    return found


def node_state(host):
    """What the node really holds: pod records, named netns, IPAM files."""
    records = json.loads(host.check_output(
        "sh -c 'printf [; sep=; for f in %s/pods/*.json; do [ -f \"$f\" ] || continue; "
        "printf \"$sep\"; cat \"$f\"; sep=,; done; printf ]'" % STATE_DIR))
    netns = host.check_output('ip netns list').split()
    netns = [n for n in netns if n.startswith('cni-')]
    ipam = host.check_output("sh -c 'ls %s/ipam/*/ 2>/dev/null | grep -v last_reserved; true'"
                             % STATE_DIR).split()
    return records, netns, ipam


def node_problems(node, host):
    """(problems, names, ips) of one node: records without netns or IPAM
    file, orphan netns, leaked addresses."""
    records, netns, ipam = node_state(host)
    problems = []
    for r in records:
        if r['netns'] not in netns:
            problems.append('%s: %s has no netns %s' % (node, r['name'], r['netns']))
        if r['ip'] not in ipam:
            problems.append('%s: %s has no IPAM file for %s' % (node, r['name'], r['ip']))
    owned, ips = {r['netns'] for r in records}, [r['ip'] for r in records]
    problems += ['%s: orphan netns %s' % (node, n) for n in netns if n not in owned]
    problems += ['%s: leaked IPAM file %s' % (node, a) for a in ipam if a not in ips]
    return problems, ['%(namespace)s/%(name)s' % r for r in records], ips


SYSTEM_NAMESPACE = 'kube-system'  # the cluster DNS pod's (roles/cluster/files/cluster-dns.yaml)


def state_problems(cluster, wanted_names):
    """Every way the nodes' state differs from a converged cluster running
    exactly wanted_names (of the default namespace) and the cluster DNS pod
    (kube-system's one pod): lost, extra or doubled pods, duplicate
    addresses, and each node's own problems."""
    problems, keys, ips = [], [], []
    for node, host in cluster.hosts.items():
        found = node_problems(node, host)
        problems += found[0]
        keys += found[1]
        ips += found[2]
    system = [k for k in keys if k.startswith(SYSTEM_NAMESPACE + '/')]
    if len(system) != 1:
        problems.append('cluster DNS: want one pod in %s, found %s' % (SYSTEM_NAMESPACE, system or 'none'))
    names = [k.split('/', 1)[1] for k in keys if k not in system]
    problems += ['pod lost: %s' % n for n in sorted(set(wanted_names) - set(names))]
    problems += ['pod not wanted: %s' % n for n in sorted(set(names) - set(wanted_names))]
    problems += ['pod recorded twice: %s' % n for n in twice(names)]
    problems += ['address held twice: %s' % a for a in twice(ips)]
    return problems


def verdict(name, **checks):
    """Count each check of one fault and keep a line saying how it fared."""
    for key, good in checks.items():
        TALLY[key + '_of'] += 1
        TALLY[key] += bool(good)
    VERDICTS.append('%-36s %s' % (name, '  '.join(
        '%s=%s' % (k, 'yes' if g else 'NO') for k, g in checks.items())))


def twice(values):
    return sorted(v for v, count in collections.Counter(values).items() if count > 1)


def pytest_terminal_summary(terminalreporter):
    if not TALLY:
        return
    terminalreporter.section('fault suite')
    for line in VERDICTS:
        terminalreporter.write_line(line)
    for key, text in TALLY_LINES:
        terminalreporter.write_line('%-42s %d of %d' % (text, TALLY[key], TALLY[key + '_of']))
