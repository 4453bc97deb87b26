"""Benchmark: how Ansible reaches the lab's nodes (issue 22, "decide with
numbers"): podnet's module server against Mitogen and against neither, in
the same run, on the same lab.

  server   the inventory's default: each node runs modules through
           roles/lab/files/podnet-module-python, which forks them from a
           server that has imported Ansible's and podnet's code
  mitogen  Mitogen (strategy mitogen_linear) with the nodes' plain venv
           Python; installed for this run under .lab/mitogen from PyPI
  neither  plain Ansible with pipelining and the nodes' plain venv Python

The lab comes up (playbooks/lab.yml) with the cluster converged once; then,
round after round, each way in turn runs site.yml with nothing to change
(the everyday loop) and, after reset.yml, a converge of the cluster from
nothing. Figures are wall-clock seconds, best of the rounds. The lab goes
down at the end, also when a step fails.

usage: python bench/connection_bench.py [--inventory inventories/scale] [--rounds 3]
"""
import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / '.venv' / 'bin'
MITOGEN = ROOT / '.lab' / 'mitogen'
MITOGEN_PIN = 'mitogen==0.3.54'  # its changelog claims ansible-core 2.19 to 2.21
PLAIN_PYTHON = '-e ansible_python_interpreter={{ podnet_root }}/.venv/bin/python'


def ways():
    plain = PLAIN_PYTHON.split(' ', 1)
    return {
        'server': ({}, []),
        'mitogen': ({'PYTHONPATH': str(MITOGEN), 'ANSIBLE_STRATEGY': 'mitogen_linear',
                     'ANSIBLE_STRATEGY_PLUGINS': str(MITOGEN / 'ansible_mitogen' / 'plugins' / 'strategy')},
                    plain),
        'neither': ({}, plain),
    }


def playbook(inventory, name, env=None, args=(), check=True):
    """(seconds, changed per host) of one playbook run; with check=False, a
    failed run gives (None, its first error line)."""
    start = time.perf_counter()
    done = subprocess.run([str(BIN / 'ansible-playbook'), '-i', inventory, 'playbooks/' + name, *args],
                          cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'),
                                             ANSIBLE_FORCE_COLOR='0', **(env or {})),
                          capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        if check:
            sys.exit('%s failed (rc %d):\n%s' % (name, done.returncode, done.stdout[-3000:]))
        return None, first_error(done.stdout)
    changed = {h: int(n) for h, n in re.findall(r'^(\S+)\s+: ok=\d+\s+changed=(\d+)', done.stdout, re.M)}
    return took, changed


def first_error(output):
    """The first error an Ansible run printed, shortened to what names it."""
    found = re.search(r'([A-Z]\w*Error: [^"\\]+)', output) or re.search(r'"msg": "([^"]+)"', output)
    return found.group(1) if found else output.strip().splitlines()[-1]


def install_mitogen():
    if not (MITOGEN / 'ansible_mitogen').is_dir():
        subprocess.run([str(BIN / 'pip'), 'install', '-q', '--target', str(MITOGEN), MITOGEN_PIN], check=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--inventory', default='inventories/scale')
    parser.add_argument('--rounds', type=int, default=3)
    options = parser.parse_args()
    install_mitogen()
    figures = {way: {'nothing to change': [], 'converge': []} for way in ways()}
    failed = {}  # way: why it cannot run podnet's playbooks
    try:
        playbook(options.inventory, 'lab.yml')
        playbook(options.inventory, 'site.yml')
        for _ in range(options.rounds):
            for way, (env, args) in ways().items():
                if way in failed:
                    continue
                took, changed = playbook(options.inventory, 'site.yml', env, args, check=False)
                if took is None:
                    failed[way] = changed
                    playbook(options.inventory, 'site.yml')  # back to a converged cluster
                    continue
                if set(changed.values()) != {0}:
                    sys.exit('%s: site.yml on a converged cluster changed %s' % (way, changed))
                figures[way]['nothing to change'].append(took)
                playbook(options.inventory, 'reset.yml')
                figures[way]['converge'].append(playbook(options.inventory, 'site.yml', env, args)[0])
    finally:
        playbook(options.inventory, 'lab.yml', args=('-e', 'lab_state=absent'), check=False)
    report(options, figures, failed)


def report(options, figures, failed):
    print('%s, %d rounds, best of them (seconds):' % (options.inventory, options.rounds))
    print('%-10s %18s %10s' % ('way', 'nothing to change', 'converge'))
    base = {k: min(v) for k, v in figures['server'].items()}
    for way, found in figures.items():
        if way in failed:
            print('%-10s cannot run podnet\'s playbooks: %s' % (way, failed[way]))
            continue
        best = {k: min(v) for k, v in found.items()}
        print('%-10s %12.2f (%.2fx) %6.2f (%.2fx)' % (
            way, best['nothing to change'], best['nothing to change'] / base['nothing to change'],
            best['converge'], best['converge'] / base['converge']))


if __name__ == '__main__':
    main()
