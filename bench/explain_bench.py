"""Benchmark: explain one pod pair (probe included) and draw the cluster,
end to end as a user runs them, on the 3-node lab with the seed's pods.

Baseline ("floor"): the cheapest playbook that reads the cluster at all,
podnet_facts on every node, run the same way: Ansible start-up, SSH and one
module round, the part of each figure podnet cannot shave off by itself.
Goals (issue "See and explain"): explain under 3 s, graph under 3 s.

Runs on the default lab with the seed's pods: a lab already up is used as
it is; otherwise the bench brings it up (playbooks/up.yml) and down again.

usage: python bench/explain_bench.py [RUNS]   (default: 3; the best run counts)
"""
import os
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
GOALS = {'explain': 3.0, 'graph': 3.0}


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
    sys.path.insert(0, str(ROOT / 'tests'))
    import podnet_testlib  # noqa: F401  (module_utils importable as Ansible does)
    from ansible.module_utils.podnet.labhost import running_hosts
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
        }
    print('explain and graph on the 3-node lab, best of %d runs' % runs)
    print('  %-8s %6.2f s   (podnet_facts on every node: the floor of any read)' % ('floor', figures['floor']))
    for name in ('explain', 'graph'):
        print('  %-8s %6.2f s   goal %.1f s: %s; %.1fx the floor' % (
            name, figures[name], GOALS[name], 'met' if figures[name] <= GOALS[name] else 'NOT met',
            figures[name] / figures['floor']))


if __name__ == '__main__':
    main()
