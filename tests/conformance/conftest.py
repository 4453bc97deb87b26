"""Conformance fixtures: the nodes and pods of whatever inventory the suite
runs against (`--ansible-inventory`, PODNET_INVENTORY, or inventories/lab).

Pods are read from each node's own records (/var/lib/podnet/pods), then
every check runs inside pods and nodes through SSH, as a user would.

Every run writes its report (conformance/report.py) and JUnit XML to
.lab/report/<molecule scenario or inventory>/, or to --podnet-report DIR:
each command a check runs on a node is kept there as its evidence.
"""
import concurrent.futures
import functools
import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest
from conformance.netpol_model import running_model
from conformance.report import Grid, Report, write_index
from podnet_testlib import (ROOT, inventory_nodes, inventory_path, playbook_argv, playbook_env,
                            testinfra_host)

REPORTS = ROOT / '.lab' / 'report'
REPORT = pytest.StashKey[Report]()
PICTURE_PODS = 100  # beyond, a picture is unreadable and Graphviz takes seconds

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
        self.chain = record.get('cni')  # the CNI network configuration list that wired it; None: podnet did

    def __repr__(self):
        return '<pod %s on %s %s>' % (self.key, self.node, self.ip)

    @property
    def inside(self):
        """The prefix that runs a command in the pod's network namespace."""
        return 'ip netns exec %s ' % self.netns

    def run(self, command, *args):
        """Run in the pod's network namespace (as `ip netns exec` does)."""
        return self.host.run(self.inside + command, *args)

    def run_in(self, container, command, *args):
        """Run inside one container: all of its namespaces."""
        return self.host.run('nsenter -t %s -n -u -i -p -m ' % self.containers[container] + command,
                             *args)


class Sample:
    """Every pod and every pair, or at scale (--podnet-sample N) at most N
    pods for a check that visits pods, and N random pairs across nodes for
    one that connects pairs, picked with a fixed seed so a rerun checks the
    same ones."""

    def __init__(self, size=None, seed=0):
        self.size, self.seed = size, seed

    def __str__(self):
        return ('a sample of at most %d pods and %d pairs across nodes per check (seed %d)'
                % (self.size, self.size, self.seed)) if self.size else 'every pod and every pair'

    def pods(self, pods):
        found = list(pods.values())
        if not self.size or len(found) <= self.size:
            return found
        return random.Random(self.seed).sample(found, self.size)

    def pairs(self, sources, targets):
        """(source, target) of two different pods: every one, or N at random
        of those across nodes."""
        if not self.size:
            return [(s, t) for s in sources for t in targets if s is not t]
        by_node = {}
        for target in targets:
            by_node.setdefault(target.node, []).append(target)
        across = sum(len(targets) - len(by_node.get(s.node, ())) for s in sources)
        if across <= self.size:
            return [(s, t) for s in sources for t in targets if s.node != t.node]
        rng, found = random.Random(self.seed), {}
        while len(found) < self.size:
            source, target = rng.choice(sources), rng.choice(targets)
            if source.node != target.node:
                found[source.key, target.key] = (source, target)
        return list(found.values())


def unreachable(host, addresses, prefix='', options=''):
    """Of addresses, those pings from host (optionally inside a netns via
    prefix) do not reach."""
    return unreachable_each(host, {prefix: addresses}, options)[prefix]


def unreachable_from(pods, targets, options=''):
    """{pod key: the addresses it does not reach} for targets {pod key:
    [addresses]}: the pods of one node ping together, in SSH round trips of
    at most PINGS_AT_ONCE pings, several nodes at the same time (at scale,
    a round trip per pod cost most of the suite's time)."""
    by_node = on_each_node(pods[key] for key in targets)
    found = at_once({node: functools.partial(unreachable_each, on_node[0].host,
                                             {pod.inside: targets[pod.key] for pod in on_node}, options)
                     for node, on_node in by_node.items()})
    return {pod.key: found[node][pod.inside] for node, on_node in by_node.items() for pod in on_node}


def on_each_node(pods):
    """{node: [its pods]}."""
    by_node = {}
    for pod in pods:
        by_node.setdefault(pod.node, []).append(pod)
    return by_node


NODES_AT_ONCE = 8  # threads, each waiting for an SSH round trip to a node of its own
PINGS_AT_ONCE = 256  # pings of one round trip: the machine runs NODES_AT_ONCE times as many


def at_once(calls):
    """{key: result} of {key: call}, up to NODES_AT_ONCE calls at a time:
    each is an SSH round trip to a node of its own, which mostly waits."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=NODES_AT_ONCE) as pool:
        running = {key: pool.submit(call) for key, call in calls.items()}
        return {key: future.result() for key, future in running.items()}


def unreachable_each(host, targets, options=''):
    """{prefix: the addresses pings from host through that prefix do not
    reach} for targets {prefix: [addresses]}, PINGS_AT_ONCE pings a round
    trip; the ones lost are pinged once more. Hundreds of pings at once
    overflow a small machine's per-CPU backlog (net.core.netdev_max_backlog,
    which is the host's, not the lab's, to set) and a few are dropped; a
    second try gets those through, while a broken path fails both."""
    pings = [(prefix, address) for prefix, addresses in targets.items() for address in addresses]
    lost = []
    for start in range(0, len(pings), PINGS_AT_ONCE):
        lost += _pinged_in_vain(host, pings[start:start + PINGS_AT_ONCE], options)
    lost = _pinged_in_vain(host, lost, options) if lost else []
    return {prefix: [address for p, address in lost if p == prefix] for prefix in targets}


def _pinged_in_vain(host, pings, options):
    """Of pings [(prefix, address)], those that got no answer. Each prefix
    (`ip netns exec <pod>`, which costs a mount of /sys) runs once, with a
    shell that pings its addresses at once and then says it ran: a prefix
    that fails (a pod gone) loses them all."""
    targets = {}
    for prefix, address in pings:
        targets.setdefault(prefix, []).append(address)
    prefixes = list(targets)
    script = ''.join('(%ssh -c "for a in %s; do (ping -c1 -W2 -q %s \\$a >/dev/null 2>&1 || echo %d:\\$a) & '
                     'done; wait; echo %d:ran") & ' % (prefix, ' '.join(targets[prefix]), options, i, i)
                     for i, prefix in enumerate(prefixes))
    lost, ran = [], set()
    for line in host.check_output("sh -c '%swait'" % script).split():
        index, address = line.split(':')
        if address == 'ran':
            ran.add(prefixes[int(index)])
        else:
            lost.append((prefixes[int(index)], address))
    return lost + [(prefix, address) for prefix in prefixes if prefix not in ran for address in targets[prefix]]


def read_pods(name, host):
    out = host.check_output("sh -c 'for f in %s/pods/*.json; do [ -f \"$f\" ] && cat \"$f\" "
                            "&& printf \"%s\"; done; true'" % (STATE_DIR, RECORD_END))
    return [PodUnderTest(name, host, json.loads(r)) for r in out.split(RECORD_END) if r.strip()]


@pytest.fixture(scope='session')
def node_vars(inventory):
    return inventory_nodes(inventory)


@pytest.fixture(scope='session')
def nodes(node_vars, pytestconfig):
    """{name: testinfra host} of every node; what each runs goes in the report."""
    report = pytestconfig.stash[REPORT]
    hosts = {name: recorded(testinfra_host(v), name, report) for name, v in node_vars.items()}
    report.plugin = wired_by([p for name, host in hosts.items() for p in read_pods(name, host)])
    return hosts


def recorded(host, name, report):
    """host, its commands and their answers kept as the running check's evidence."""
    run = host.backend.run
    if getattr(run, 'podnet_report', None) is report:
        return host

    def run_and_record(command, *args, **kwargs):
        result = run(command, *args, **kwargs)
        text = result.command.decode(errors='replace') if isinstance(result.command, bytes) \
            else str(result.command)
        report.command(name, text, result.rc, result.stdout + result.stderr)
        return result
    run_and_record.podnet_report = report
    host.backend.run = run_and_record
    return host


@pytest.fixture(scope='session')
def sample(pytestconfig):
    """Which pods and pairs the checks visit (Sample); the report says which."""
    size = pytestconfig.getoption('podnet_sample')
    found = Sample(size, int(os.environ.get('PODNET_SAMPLE_SEED', '0')))
    pytestconfig.stash[REPORT].scope = str(found)
    return found


@pytest.fixture
def report(pytestconfig):
    """The running check's part of the report: report.grid(title, pods,
    allowed, why, expected) draws a truth table there."""
    return GridRecorder(pytestconfig.stash[REPORT])


class GridRecorder:
    """Draws truth tables into a report; with none (a check called outside
    the suite, as tests/faults does), draws nowhere."""

    def __init__(self, report=None):
        self._report = report

    def grid(self, title, pods, allowed, why=None, expected=None):
        if self._report is not None:
            self._report.grid(Grid(title, list(pods), allowed, why or {}, expected))


@pytest.fixture(scope='session')
def pod_cidrs(nodes):
    return {name: host.file(STATE_DIR + '/pod-cidr').content_string.strip()
            for name, host in nodes.items()}


@pytest.fixture(scope='session')
def model(inventory, nodes):
    """G5's cluster: the netpol e2e model's pods (netpol_model.py)."""
    yield from running_model(inventory, nodes)


@pytest.fixture(scope='session')
def pods(nodes, pytestconfig):
    """{namespace/name: PodUnderTest} of every pod in the cluster."""
    found = {}
    for name, host in nodes.items():
        found.update({p.key: p for p in read_pods(name, host)})
    if not found:
        pytest.fail('the cluster runs no pods: converge playbooks/site.yml first')
    pytestconfig.stash[REPORT].pod_count = len(found)
    return found


def wired_by(pods):
    """What wired these pods, for the report ('' for none)."""
    return ', '.join(sorted({plugin_under_test(p.chain) for p in pods}))


def plugin_under_test(chain):
    """What wired a pod, for people: 'native (podnet)', or a list's name
    and its plugins, e.g. 'podnet-bridge (bridge, portmap)'."""
    if not chain:
        return 'native (podnet)'
    return '%s (%s)' % (chain.get('name'), ', '.join(p.get('type', '?') for p in chain.get('plugins') or ()))


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


def pytest_collection_modifyitems(config, items):
    """G5 replaces the cluster's pods with the netpol model (when enabled):
    its tests run last, after every check of the pods the cluster was
    converged with. The sort is stable: all else keeps its order."""
    items.sort(key=lambda item: item.path.name == 'test_network_policy.py')
    for item in items:
        add_to_report(config, item)


# -- the report ------------------------------------------------------------

def pytest_addoption(parser):
    parser.addoption('--podnet-sample', metavar='N', type=positive,
                     default=int(os.environ.get('PODNET_SAMPLE', '0')) or None,
                     help='at scale: visit at most N pods per check and N random pairs across '
                          'nodes (seed: PODNET_SAMPLE_SEED, default 0) rather than all of them')
    parser.addoption('--podnet-report', metavar='DIR', default=os.environ.get('PODNET_REPORT'),
                     help='write the conformance report and JUnit XML to DIR '
                          '(default: .lab/report/<molecule scenario or inventory name>)')


def positive(text):
    number = int(text)
    if number < 1:
        raise ValueError('must be at least 1')
    return number


def report_folder(config):
    chosen = config.getoption('podnet_report')
    if chosen:
        return os.path.abspath(chosen)
    name = os.environ.get('MOLECULE_SCENARIO_NAME') or inventory_path(config).name
    return str(REPORTS / name)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Before pytest's own junitxml plugin reads where to write (--junitxml wins)."""
    folder = report_folder(config)
    name = os.path.basename(folder)
    config.stash[REPORT] = Report(name, inventory_path(config))
    config.podnet_report_folder = folder
    if hasattr(config.option, 'xmlpath') and not config.option.xmlpath:
        config.option.xmlpath = os.path.join(folder, 'junit.xml')


def add_to_report(config, item):
    module = getattr(item, 'module', None)
    function = getattr(item, 'function', None)
    config.stash[REPORT].add(str(item.path), getattr(module, '__doc__', ''), item.nodeid,
                             getattr(function, '__name__', item.name),
                             getattr(function, '__doc__', ''))


def pytest_deselected(items):
    for item in items:
        add_to_report(item.config, item)
        item.config.stash[REPORT].deselected = deselection(item.config)


def deselection(config):
    parts = []
    if config.option.keyword:
        parts.append("-k '%s'" % config.option.keyword)
    if config.option.markexpr:
        parts.append("-m '%s'" % config.option.markexpr)
    return 'deselected by %s' % ' '.join(parts) if parts else 'deselected'


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item):
    report = item.config.stash[REPORT]
    report.begin(item.nodeid)
    try:
        return (yield)
    finally:
        report.end()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item):
    result = yield
    if result.skipped and isinstance(result.longrepr, tuple):
        message = result.longrepr[2]
    else:
        message = result.longreprtext if result.failed else ''
    item.config.stash[REPORT].phase(item.nodeid, result.when, result.outcome, result.duration,
                                    message)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """A test module that cannot be collected is an error in the report."""
    result = yield
    if result.failed:
        collector.config.stash[REPORT].broken(str(collector.path), result.longreprtext)
    return result


def pytest_sessionfinish(session):
    """Write the report, with a picture of the cluster drawn from live state
    (playbooks/graph.yml) when the nodes answer; a run that collects nothing
    to run (--collect-only, a -k that matches nothing) keeps the last one."""
    config = session.config
    if config.option.collectonly or not getattr(session, 'items', None):
        return
    started = time.monotonic()
    folder = config.podnet_report_folder
    pod_count = config.stash[REPORT].pod_count
    if pod_count > PICTURE_PODS:
        picture, note = None, ('The cluster was not drawn: %d pods are more than a picture shows '
                               '(over %d); playbooks/graph.yml draws it.' % (pod_count, PICTURE_PODS))
    else:
        picture, note = draw_cluster(inventory_path(config), folder)
    page = config.stash[REPORT].write(Path(folder), picture, note)
    if Path(folder).parent == REPORTS:
        write_index(REPORTS)
    config.podnet_report_written = (page, time.monotonic() - started)


def draw_cluster(inventory, folder):
    """(SVG text, note) of the cluster now; no SVG and why when it cannot be drawn."""
    output = os.path.join(folder, 'cluster')
    try:
        done = subprocess.run(playbook_argv(inventory, 'playbooks/graph.yml', '-e', 'graph_output=' + output),
                              cwd=ROOT, env=playbook_env(), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            return None, 'The cluster was not drawn: playbooks/graph.yml failed:\n' + done.stdout[-1500:]
        return Path(output + '.svg').read_text(), 'Drawn by playbooks/graph.yml when the run ended.'
    except subprocess.TimeoutExpired:
        return None, 'The cluster was not drawn: playbooks/graph.yml took over 120 s.'
    except OSError as exc:
        return None, 'The cluster was not drawn: %s' % exc


def pytest_terminal_summary(terminalreporter, config):
    written = getattr(config, 'podnet_report_written', None)
    if written:
        terminalreporter.write_line('podnet conformance report: %s (written in %.1f s)' % written)
