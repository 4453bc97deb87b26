"""Benchmark: the everyday loop on the 3-node lab, today against the code
before Services and cluster DNS (issue 23: "within 10%"), in one run.

The everyday loop is what a user runs again and again on a healthy lab:
`site.yml` with nothing to change, and `make up` (up.yml: the lab, the
converge and the summary). Three ways, each in a tree of its own:

  before     the commit before issue 23 (--baseline), in a git worktree
             of its own that shares this project's .venv
  today-     this tree with podnet_payloads off (PODNET_PAYLOADS=0): what
             Services and DNS cost by themselves
  today      this tree as users run it

Rounds alternate the ways, each round in the reverse order of the one
before, so the machine's drift hits each alike: a way brings the lab up
from its tree, converges once, runs site.yml and up.yml once each (the
first run on a fresh lab warms the nodes' module servers and caches: it
is shown apart, it is not the everyday loop), times --runs of each, all
of which must report changed=0, and takes the lab down. Figures are
medians over every round, in seconds, with each round's median beside
them so the noise shows; the ratios are against `before`, and the goal
is judged on the everyday runs. Run it alone, on a machine with no lab up.

usage: python bench/everyday_bench.py [--baseline REV] [--rounds 3] [--runs 4]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE_SERVICES = '8e77696'  # the last commit before issue 23's workloads, Services and DNS
GOAL = 1.10
CHANGED = re.compile(r'changed=(\d+)')


def playbook(tree, name, env, *args):
    """(seconds, changed summed over hosts) of one run of playbooks/<name>."""
    command = [str(ROOT / '.venv' / 'bin' / 'ansible-playbook'), '-i', 'inventories/lab',
               'playbooks/' + name, *args]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode:
        sys.exit('%s in %s failed:\n%s' % (name, tree, done.stdout[-3000:] + done.stderr[-2000:]))
    return took, sum(int(n) for n in CHANGED.findall(done.stdout))


def environment(tree, payloads):
    env = dict(os.environ, ANSIBLE_CONFIG=str(Path(tree) / 'ansible.cfg'), ANSIBLE_FORCE_COLOR='0',
               PATH='%s:%s' % (ROOT / '.venv' / 'bin', os.environ['PATH']))
    if not payloads:
        env['PODNET_PAYLOADS'] = '0'
    return env


def measure(tree, env, runs):
    """{'site.yml': [s, ...], 'up.yml': [...]} on a lab this tree brings up."""
    figures = {'site.yml': [], 'up.yml': [], 'site.yml first': [], 'up.yml first': []}
    try:
        playbook(tree, 'lab.yml', env)
        playbook(tree, 'site.yml', env)
        for name in ('site.yml', 'up.yml'):
            for run in range(runs + 1):
                took, changed = playbook(tree, name, env)
                if changed:
                    sys.exit('%s in %s changed %d things on a converged lab' % (name, tree, changed))
                figures[name + ' first' if run == 0 else name].append(took)
    finally:
        playbook(tree, 'lab.yml', env, '-e', 'lab_state=absent')
    return figures


def baseline_tree(revision, folder):
    subprocess.run(['git', '-C', str(ROOT), 'worktree', 'add', '--detach', '-q', folder, revision], check=True)
    os.symlink(ROOT / '.venv', Path(folder) / '.venv')
    return folder


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--baseline', default=BEFORE_SERVICES)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--runs', type=int, default=4)
    options = parser.parse_args()
    figures = {}
    with tempfile.TemporaryDirectory(prefix='podnet-before-') as scratch:
        before = os.path.join(scratch, 'tree')
        try:
            ways = {'before': (baseline_tree(options.baseline, before), True),
                    'today-': (str(ROOT), False), 'today': (str(ROOT), True)}
            order = list(ways)
            for _ in range(options.rounds):
                for way in order:
                    tree, payloads = ways[way]
                    for name, took in measure(tree, environment(tree, payloads), options.runs).items():
                        figures.setdefault(name, {}).setdefault(way, []).append(took)
                order.reverse()
        finally:
            subprocess.run(['git', '-C', str(ROOT), 'worktree', 'remove', '--force', before], check=False)
    report(figures, options)


def report(figures, options):
    """figures: {playbook: {way: [[seconds of each run] of each round]}}."""
    print('the everyday loop on the 3-node lab: median seconds of %d runs (%d rounds; each round\'s median in '
          'brackets), before = %s' % (options.runs * options.rounds, options.rounds, options.baseline))
    failed = False
    for name, ways in figures.items():
        median = {way: statistics.median(t for r in rounds for t in r) for way, rounds in ways.items()}
        cells = ['%s %.2f s [%s]' % (way, median[way], ' '.join('%.2f' % statistics.median(r) for r in rounds))
                 for way, rounds in ways.items()]
        ratio = median['today'] / median['before']
        judged = not name.endswith('first')
        failed |= judged and ratio > GOAL
        print('  %-14s %s   today/before %.2f%s' % (
            name, '   '.join(cells), ratio,
            ' (goal <= %.2f)%s' % (GOAL, '' if ratio <= GOAL else '  MISSED') if judged else ' (not judged)'))
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
