"""Benchmark: explain one pod pair (probe included), draw the cluster and
write the conformance report, end to end as a user runs them, on the 3-node
lab with the seed's pods.

Baseline ("floor"): the cheapest playbook that reads the cluster at all,
podnet_facts on every node, run the same way: Ansible start-up, SSH and one
module round, the part of each figure podnet cannot shave off by itself.
Goals (issue "See and explain"): explain under 3 s, graph under 3 s, report
generation under 5 s. The report is timed twice: as a conformance run writes
it (the suite's G1 checks; the live picture of the cluster included), and
rendered in this process at the size of the netpol scenario's (every G5
case's four 9x9 truth tables, 40 commands of evidence for each check).

Runs on the default lab with the seed's pods: a lab already up is used as
it is; otherwise the bench brings it up (playbooks/up.yml) and down again.

usage: python bench/explain_bench.py [RUNS]   (default: 3; the best run counts)
"""
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = str(ROOT / '.venv' / 'bin' / 'ansible-playbook')
FLOOR = '''- hosts: nodes
  gather_facts: false
  tasks:
    - podnet_facts:
'''
GOALS = {'explain': 3.0, 'graph': 3.0, 'report': 5.0, 'render': 5.0}
WRITTEN = re.compile(r'podnet conformance report: \S+ \(written in ([0-9.]+) s\)')


def timed(*args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'))
    start = time.perf_counter()
    done = subprocess.run([PLAYBOOK, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit('%s failed (is the lab up? make up):\n%s' % (' '.join(args), done.stdout[-3000:]))
    return took


def best(runs, *args):
    return min(timed(*args) for _ in range(runs))


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    sys.path.insert(0, str(ROOT / 'tests'))  # podnet_testlib, conformance.report
    import podnet_testlib  # noqa: F401  (module_utils importable as Ansible does)
    from ansible.module_utils.podnet.lab.host import running_hosts
    was_up = bool(running_hosts('lab'))
    if not was_up:
        timed('playbooks/up.yml')
    try:
        measure(runs)
    finally:
        if not was_up:
            timed('playbooks/lab.yml', '-e', 'lab_state=absent')


def measure(runs):
    with tempfile.TemporaryDirectory(prefix='podnet-bench-') as scratch:
        floor_playbook = os.path.join(scratch, 'floor.yml')
        with open(floor_playbook, 'w') as f:
            f.write(FLOOR)
        figures = {
            'floor': best(runs, floor_playbook),
            'explain': best(runs, 'playbooks/explain.yml', '-e', 'from=default/netexec-a',
                            '-e', 'to=default/netexec-b'),
            'graph': best(runs, 'playbooks/graph.yml', '-e', 'graph_output=%s/cluster' % scratch),
            'report': min(report_written(scratch) for _ in range(runs)),
            'render': min(render_full_size(scratch) for _ in range(runs)),
        }
    print('explain, graph and the conformance report on the 3-node lab, best of %d runs' % runs)
    print('  %-8s %6.2f s   (podnet_facts on every node: the floor of any read)' % ('floor', figures['floor']))
    for name in ('explain', 'graph', 'report', 'render'):
        print('  %-8s %6.2f s   goal %.1f s: %s; %.1fx the floor' % (
            name, figures[name], GOALS[name], 'met' if figures[name] <= GOALS[name] else 'NOT met',
            figures[name] / figures['floor']))


def report_written(scratch):
    """How long the conformance suite took to write its report (as it says)."""
    done = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           'tests/conformance', '-k', 'g1_pod_ip', '--podnet-report',
                           os.path.join(scratch, 'report')], cwd=ROOT, capture_output=True, text=True)
    found = WRITTEN.search(done.stdout)
    if done.returncode != 0 or not found:
        sys.exit('the conformance run failed or wrote no report:\n' + done.stdout[-3000:])
    return float(found.group(1))


def render_full_size(scratch):
    """Seconds to render and write a report of the netpol scenario's size."""
    from conformance.report import COMMANDS_KEPT, OUTPUT_CHARS, Grid, Report
    pods = ['%s/%s' % (n, p) for n in 'xyz' for p in 'abc']
    report = Report('netpol', ROOT / 'inventories' / 'lab')
    for case in range(24):
        nodeid = 'test_network_policy.py::test_policy_case[%d]' % case
        report.add('test_network_policy.py', 'G5: policy.', nodeid, 'test_policy_case', '')
        report.begin(nodeid)
        for n in range(COMMANDS_KEPT):
            report.command('node%d' % (n % 3 + 1), 'ip netns exec cni-%d curl' % n, 0, 'o' * OUTPUT_CHARS)
        for name in ('TCP/80', 'UDP/80', 'TCP/81', 'UDP/81'):
            allowed = {s: {t: (hash((case, s, t)) % 3) > 0 for t in pods} for s in pods}
            why = {s: {t: 'ingress of %s: isolated by x/p%d, no rule allows' % (t, case)
                       for t in pods if not allowed[s][t]} for s in pods}
            report.grid(Grid(name, pods, allowed, why, allowed))
        report.phase(nodeid, 'call', 'passed', 9.0, '')
        report.end()
    picture = Path(scratch, 'cluster.svg').read_text()
    start = time.perf_counter()
    report.write(Path(scratch, 'full'), picture, 'drawn')
    return time.perf_counter() - start


if __name__ == '__main__':
    main()
