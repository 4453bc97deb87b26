"""Benchmark: 1,000 pods on 20 nodes (inventories/scale), end to end as a
user runs the playbooks, each figure against its goal (issue "Scale").

  1. lab up: the 20 nodes (playbooks/lab.yml)
  2. converge the N pods after lab up (site.yml with bench/gen_pods.py's YAML)
  3. a second converge, which must report changed=0
  4. remove every pod (site.yml with no manifests)
  5. lab down (lab.yml lab_state=absent)

Baseline: the same lab's converge with no pods at all, run in the same
process before step 2: what any converge of these 20 nodes costs (Ansible,
SSH, one module run per role on each node), so the pods' own share shows.
Memory: the machine's used memory (MemTotal - MemAvailable) with the pods
running, less the figure with the lab up and no pods; per pod.

Runs on a machine with no scale lab up; brings it down at the end, also
when a step fails. Each playbook runs with the podnet_timing callback; the
slowest tasks of each step are printed under it.

usage: python bench/scale_bench.py [PODS]   (default 1000)
"""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = str(ROOT / '.venv' / 'bin' / 'ansible-playbook')
INVENTORY = 'inventories/scale'
NODES = 20
GOALS = {'lab up': None, 'no pods': None, 'converge': 60.0, 'second converge': 15.0,
         'remove all': 20.0, 'lab down': 10.0}
CHANGED = re.compile(r'changed=(\d+)')


def playbook(*args):
    """(seconds, slowest tasks) of one playbook run; exits on failure."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_CALLBACKS_ENABLED='podnet_timing')
    start = time.perf_counter()
    done = subprocess.run([PLAYBOOK, '-i', INVENTORY, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError('%s failed:\n%s' % (' '.join(args), done.stdout[-4000:]))
    timing = done.stdout[done.stdout.find('TIMING'):].splitlines()[2:5]
    return took, sum(int(c) for c in CHANGED.findall(done.stdout)), timing


def used_memory():
    info = dict(line.split(':', 1) for line in Path('/proc/meminfo').read_text().splitlines())
    kib = lambda key: int(info[key].split()[0])  # noqa: E731
    return (kib('MemTotal') - kib('MemAvailable')) * 1024


def manifests(path):
    return '{"podnet_manifests": %s}' % ('["%s"]' % path if path else '[]')


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    pods_file = ROOT / '.lab' / ('pods-%d.yaml' % count)
    pods_file.parent.mkdir(exist_ok=True)
    pods_file.write_text(subprocess.run([sys.executable, str(ROOT / 'bench' / 'gen_pods.py'), str(count)],
                                        capture_output=True, text=True, check=True).stdout)
    figures, notes = {}, {}
    try:
        figures['lab up'], _, notes['lab up'] = playbook('playbooks/lab.yml')
        figures['no pods'], _, notes['no pods'] = playbook('playbooks/site.yml', '-e', manifests(None))
        before = used_memory()
        figures['converge'], _, notes['converge'] = playbook('playbooks/site.yml', '-e', manifests(pods_file))
        pods_memory = used_memory() - before
        figures['second converge'], changed, notes['second converge'] = playbook(
            'playbooks/site.yml', '-e', manifests(pods_file))
        if changed:
            print('second converge: changed=%d, not 0' % changed)
        figures['remove all'], _, notes['remove all'] = playbook('playbooks/site.yml', '-e', manifests(None))
    finally:
        figures['lab down'], _, notes['lab down'] = playbook('playbooks/lab.yml', '-e', 'lab_state=absent')
    report(count, figures, notes, pods_memory)


def report(count, figures, notes, pods_memory):
    print('%d pods on %d nodes (%s), one run' % (count, NODES, INVENTORY))
    for name, seconds in figures.items():
        goal = GOALS[name]
        judged = 'goal %.0f s: %s' % (goal, 'met' if seconds <= goal else 'NOT met') if goal else ''
        share = '; %.1fx the baseline (converge with no pods)' % (seconds / figures['no pods']) \
            if name != 'no pods' and 'no pods' in figures else ''
        print('  %-16s %6.1f s   %s%s' % (name, seconds, judged, share))
        for line in notes.get(name, []):
            print('  %16s   %s' % ('', line.strip()))
    print('  memory of the pods: %.0f MB in all, %.2f MB per pod (used memory, pods up less lab up)'
          % (pods_memory / 2**20, pods_memory / 2**20 / count))


if __name__ == '__main__':
    main()
