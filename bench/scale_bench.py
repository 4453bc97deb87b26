"""Benchmark: 1,000 pods on 20 nodes (inventories/scale), end to end as a
user runs the playbooks, each figure against its goal (issue "Scale").

  1. lab up: the 20 nodes (playbooks/lab.yml)
  2. converge after lab up: site.yml with bench/gen_pods.py's N pods and the
     seed's 5 pods the conformance suite needs, on nodes that have nothing
     yet (pod bridges, vxlan, policy tables, and each node's module server
     start here too)
  3. a second converge, which must report changed=0
  4. the conformance suite (G5 aside) on a sample: 200 pods per check and 200
     random pairs across nodes (--podnet-sample 200)
  5. remove every pod (site.yml with no manifests)
  6. the baseline: a converge with no pods and nothing to change, what any
     converge of these 20 nodes costs (Ansible, SSH, one module run per role
     on each node), so the pods' own share shows
  7. the pods again, onto the converged cluster: what starting them costs
     when the nodes' networks and module servers are already there
  8. lab down (lab.yml lab_state=absent), the pods still running

Side by side: Mininet starts and stops as many hosts on 20 LinuxBridge
switches first, in the same run (bench/mininet_bench.py says what each side
builds); podnet's converge after lab up and its removal are each held
against it (goal: 0.5x). Without Mininet installed (bin/bootstrap
--bench-scale) that pair of figures is left out and says why.

Memory: the machine's used memory (MemTotal - MemAvailable) with the pods
running, less the figure at step 6 (the same nodes and module servers, no
pods); per pod.

Runs on a machine with no scale lab up; brings it down at the end, also
when a step fails. Each playbook runs with the podnet_timing callback; the
slowest tasks of each step are printed under it.

Cores: Mininet starts its hosts from one process, one after another, so its
figures hardly move with the machine's CPUs; podnet converges every node
at once. The ratios therefore depend on the CPUs, and the report names how
many it ran on. --cores N runs everything (lab nodes, playbooks, Mininet)
on N of the CPUs this process may use: the affinity is inherited by every
process started from here, down to the pods; the kernel's own threads
still run anywhere.

usage: python bench/scale_bench.py [PODS] [--cores N]   (default 1000 pods, every CPU)
"""
import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import mininet_bench

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = str(ROOT / '.venv' / 'bin' / 'ansible-playbook')
INVENTORY = 'inventories/scale'
NODES = 20
GOALS = {'lab up': None, 'converge': 60.0, 'second converge': 15.0, 'conformance': None,
         'remove all': 20.0, 'no pods': None, 'pods again': None, 'lab down': 10.0}
SAMPLE = 200
MININET_GOAL = 0.5  # podnet's time over Mininet's, for as many pods as it has hosts
CHANGED = re.compile(r'changed=(\d+)')
MODULE_SERVER = 'podnet_module_server.py'


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
    found = done.stdout.find('TIMING')
    timing = done.stdout[found:].splitlines()[2:5] if found >= 0 else []
    return took, sum(int(c) for c in CHANGED.findall(done.stdout)), timing


def used_memory():
    info = dict(line.split(':', 1) for line in Path('/proc/meminfo').read_text().splitlines())
    kib = lambda key: int(info[key].split()[0])  # noqa: E731
    return (kib('MemTotal') - kib('MemAvailable')) * 1024


def processes():
    """(pid, argv, pid namespace) of every process."""
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            argv = Path('/proc/%s/cmdline' % pid).read_bytes().decode(errors='replace').split('\0')
            yield int(pid), argv, os.readlink('/proc/%s/ns/pid' % pid)
        except OSError:
            continue


def pss(pid):
    """Proportional set size in bytes: shared pages split among their users."""
    try:
        for line in Path('/proc/%d/smaps_rollup' % pid).read_text().splitlines():
            if line.startswith('Pss:'):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_per_role(lab, pods):
    """(per node, per pod, per module server) bytes of PSS: a node's init
    and sshd (the other processes of its PID namespace), a pod's pause and
    sleeping container, a node's module server."""
    found = list(processes())
    node_ns = {ns for _, argv, ns in found
               if any(a.endswith('podnet-lab-init') for a in argv) and lab in argv and 'fabric' not in argv
               and 'outside' not in argv}
    servers = [pid for pid, argv, ns in found if ns in node_ns and any(a.endswith(MODULE_SERVER) for a in argv)]
    nodes = sum(pss(pid) for pid, _, ns in found if ns in node_ns and pid not in servers)
    pod_procs = sum(pss(pid) for pid, argv, _ in found
                    if argv[0] == '/pause' or argv[:2] == ['sleep', 'infinity'])
    return nodes / max(len(node_ns), 1), pod_procs / pods, sum(map(pss, servers)) / max(len(servers), 1)


def manifests(path):
    return '{"podnet_manifests": %s}' % ('["manifests/seed", "%s"]' % path if path else '[]')


def conformance():
    """(seconds, its failures, the report's line and pytest's summary) of the sampled suite."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           'tests/conformance', '--ansible-inventory', INVENTORY,
                           '--podnet-sample', str(SAMPLE)], cwd=ROOT, capture_output=True, text=True)
    took = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    failed = 0 if done.returncode == 0 else 1
    return took, failed, [line for line in lines if 'report:' in line] + lines[-1:]


def use_cores(wanted):
    """Pin this process, and so everything it starts, to wanted of its CPUs;
    the number it runs on."""
    allowed = sorted(os.sched_getaffinity(0))
    if wanted is not None:
        if not 1 <= wanted <= len(allowed):
            sys.exit('--cores: %d asked, %d may be used' % (wanted, len(allowed)))
        os.sched_setaffinity(0, allowed[:wanted])
    return len(os.sched_getaffinity(0))


def main():
    parser = argparse.ArgumentParser(description='1,000 pods on 20 nodes, side by side with Mininet.')
    parser.add_argument('pods', nargs='?', type=int, default=1000)
    parser.add_argument('--cores', type=int, help='run everything on this many CPUs (default: all)')
    args = parser.parse_args()
    count, cores = args.pods, use_cores(args.cores)
    pods_file = ROOT / '.lab' / ('pods-%d.yaml' % count)
    pods_file.parent.mkdir(exist_ok=True)
    pods_file.write_text(subprocess.run([sys.executable, str(ROOT / 'bench' / 'gen_pods.py'), str(count)],
                                        capture_output=True, text=True, check=True).stdout)
    figures, notes = {}, {}
    why_not, mininet = mininet_bench.available(), None
    try:
        mininet = mininet_bench.run(count, NODES) if not why_not else None
    except RuntimeError as exc:  # podnet is still measured; the side by side says why not
        why_not = str(exc).splitlines()[0]
    try:
        figures['lab up'], _, notes['lab up'] = playbook('playbooks/lab.yml')
        figures['converge'], _, notes['converge'] = playbook('playbooks/site.yml', '-e', manifests(pods_file))
        with_pods = used_memory()
        per_node, per_pod, per_server = memory_per_role('scale', count)
        figures['second converge'], changed, notes['second converge'] = playbook(
            'playbooks/site.yml', '-e', manifests(pods_file))
        if changed:
            print('second converge: changed=%d, not 0' % changed)
        figures['conformance'], failed, notes['conformance'] = conformance()
        if failed:
            print('conformance: checks failed (see its report)')
        figures['remove all'], _, notes['remove all'] = playbook('playbooks/site.yml', '-e', manifests(None))
        figures['no pods'], _, notes['no pods'] = playbook('playbooks/site.yml', '-e', manifests(None))
        pods_memory = with_pods - used_memory()
        figures['pods again'], _, notes['pods again'] = playbook('playbooks/site.yml', '-e', manifests(pods_file))
    finally:
        figures['lab down'], _, notes['lab down'] = playbook('playbooks/lab.yml', '-e', 'lab_state=absent')
    report(count, cores, figures, notes, pods_memory, (per_node, per_pod, per_server))
    side_by_side(figures, mininet, why_not)


def side_by_side(figures, mininet, why_not):
    if not mininet:
        print('  Mininet side by side: not measured: %s' % why_not)
        return
    print('  Mininet, %(hosts)d hosts on %(switches)d LinuxBridge switches, same run: start %(start).1f s, '
          'stop %(stop).1f s (its two ends pinged: %(end_to_end_loss).0f%% loss)' % mininet)
    for ours, theirs, label in (('converge', 'start', 'converge after lab up'), ('remove all', 'stop', 'remove all')):
        ratio = figures[ours] / mininet[theirs]
        print('  %-22s %.2fx Mininet\'s %s   goal 0.5x: %s'
              % (label, ratio, theirs, 'met' if ratio <= MININET_GOAL else 'NOT met'))
    if 'pods again' in figures:
        print('  %-22s %.2fx Mininet\'s start (the nodes already converged: not the goal\'s figure)'
              % ('pods again', figures['pods again'] / mininet['start']))


def report(count, cores, figures, notes, pods_memory, per_role):
    print('%d pods and the seed pods on %d nodes (%s), one run on %d of the machine\'s %d CPUs'
          % (count, NODES, INVENTORY, cores, os.cpu_count()))
    for name, seconds in figures.items():
        goal = GOALS[name]
        judged = 'goal %.0f s: %s' % (goal, 'met' if seconds <= goal else 'NOT met') if goal else ''
        share = '; %.1fx the baseline (a converge with no pods, nothing to change)' % (
            seconds / figures['no pods']) if name != 'no pods' and 'no pods' in figures else ''
        print('  %-16s %6.1f s   %s%s' % (name, seconds, judged, share))
        for line in notes.get(name, []):
            print('  %16s   %s' % ('', line.strip()))
    print('  memory of the pods: %.0f MiB in all, %.2f MiB per pod (used memory, pods up less no pods; '
          'goal: the cluster under 4 GiB)' % (pods_memory / 2**20, pods_memory / 2**20 / count))
    per_node, per_pod, per_server = per_role
    print('  PSS per idle pod (pause + sleep): %.2f MiB; per node (its init and sshd): %.2f MiB; '
          'per node\'s module server (gone after 5 idle minutes): %.2f MiB'
          % (per_pod / 2**20, per_node / 2**20, per_server / 2**20))


if __name__ == '__main__':
    main()
