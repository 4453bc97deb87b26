"""Benchmark: lab bring-up and teardown, against a plain shell baseline.

Baseline ("shell loop"): per node, what a hand-made lab does at the least:
`ip netns add`, a veth pair onto a root bridge, an address, lo up, and an
sshd started in the namespace, then waiting for its port. podnet does more
per node (five namespaces held by an init, two veths, fabric, routes), and
runs as a real `ansible-playbook playbooks/lab.yml`, Ansible start-up
included. Both run here, in one process, on the same machine.

usage: python bench/lab_bench.py [NODE_COUNT ...]   (default: 3 20)
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / '.venv' / 'bin'
SSH_DIR = ROOT / '.lab' / 'ssh'

BASELINE_UP = r'''
set -e
mkdir -p /run/sshd
ip link add pnbase-br type bridge; ip addr add 172.30.250.1/24 dev pnbase-br; ip link set pnbase-br up
for i in $(seq 1 "$1"); do
  ip netns add pnbase-$i
  ip link add pnbase-h$i type veth peer name eth0 netns pnbase-$i
  ip link set pnbase-h$i master pnbase-br up
  ip -n pnbase-$i addr add 172.30.250.$((10+i))/24 dev eth0
  ip -n pnbase-$i link set eth0 up; ip -n pnbase-$i link set lo up
  ip netns exec pnbase-$i /usr/sbin/sshd -f "$2/sshd_config" -o ListenAddress=172.30.250.$((10+i)) \
      -o PidFile=/run/pnbase-$i.pid
done
for i in $(seq 1 "$1"); do
  until (exec 3<>/dev/tcp/172.30.250.$((10+i))/22) 2>/dev/null; do sleep 0.01; done
done
'''
BASELINE_DOWN = r'''
for i in $(seq 1 "$1"); do
  [ -f /run/pnbase-$i.pid ] && kill "$(cat /run/pnbase-$i.pid)" 2>/dev/null; rm -f /run/pnbase-$i.pid
  ip netns del pnbase-$i 2>/dev/null
done
ip link del pnbase-br 2>/dev/null; true
'''


def timed(argv, **kwargs):
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError('%s failed:\n%s%s' % (argv[:3], done.stdout[-3000:], done.stderr[-3000:]))
    return time.perf_counter() - start


BASELINE = r'''
mount -t tmpfs tmpfs /run
t0=$(date +%%s.%%N)
( %s ) || exit 1
t1=$(date +%%s.%%N)
%s
t2=$(date +%%s.%%N)
echo "$t0 $t1 $t2"
''' % (BASELINE_UP, BASELINE_DOWN)


def baseline(count):
    """(up, down) seconds of the shell loop, run with a private /run so that
    its `ip netns add` leaves nothing in the machine's /run."""
    done = subprocess.run(['unshare', '--mount', '--propagation', 'private', 'bash', '-c', BASELINE,
                           'baseline', str(count), str(SSH_DIR)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError('shell baseline failed: %s' % done.stderr[-2000:])
    t0, t1, t2 = (float(t) for t in done.stdout.split()[-3:])
    return t1 - t0, t2 - t1


def bench_inventory(folder, count):
    hosts = {'node%d' % i: {'ansible_host': '172.30.251.%d' % (10 + i),
                            'podnet_underlay_ip': '10.13.1.%d' % (10 + i)}
             for i in range(1, count + 1)}
    (folder / 'group_vars' / 'all').mkdir(parents=True)
    (folder / 'hosts.yml').write_text(json.dumps({'nodes': {'hosts': hosts}}))
    (folder / 'group_vars' / 'all' / 'lab.yml').write_text(json.dumps({'podnet_lab': {
        'name': 'bench', 'mgmt': {'subnet': '172.30.251.0/24', 'host_ip': '172.30.251.1'},
        'racks': {'rack1': {'subnet': '10.13.1.0/24', 'gateway': '10.13.1.1'}},
        'outside': {'subnet': '203.0.113.0/24', 'gateway': '203.0.113.1',
                    'host_ip': '203.0.113.10'}}}))
    connection = ROOT / 'inventories' / 'lab' / 'group_vars' / 'all' / 'connection.yml'
    (folder / 'group_vars' / 'all' / 'connection.yml').symlink_to(connection)
    return folder


def podnet(count):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'))
    with tempfile.TemporaryDirectory() as tmp:
        inventory = bench_inventory(Path(tmp), count)
        playbook = [str(BIN / 'ansible-playbook'), '-i', str(inventory), 'playbooks/lab.yml']
        try:
            up = timed(playbook, cwd=ROOT, env=env)
            again = timed(playbook, cwd=ROOT, env=env)
            down = timed(playbook + ['-e', 'lab_state=absent'], cwd=ROOT, env=env)
        finally:
            subprocess.run(playbook + ['-e', 'lab_state=absent'], cwd=ROOT, env=env,
                           capture_output=True)
    return up, again, down


def main(counts):
    if not (SSH_DIR / 'sshd_config').exists():
        sys.exit('run `make up` once first: the baseline borrows the lab sshd config')
    print('%-6s %-22s %-22s %-9s %-10s %s' % ('nodes', 'up: podnet / shell', 'down: podnet / shell',
                                               'up ratio', 'rerun', 'goal'))
    for count in counts:
        base_up, base_down = baseline(count)
        up, again, down = podnet(count)
        goal = {3: 'up <= 5 s, down <= 3 s', 20: 'up <= 20 s'}.get(count, '')
        print('%-6d %6.2f s / %6.2f s     %6.2f s / %6.2f s     %5.1fx    %6.2f s   %s' % (
            count, up, base_up, down, base_down, up / base_up, again, goal))


if __name__ == '__main__':
    main([int(a) for a in sys.argv[1:]] or [3, 20])
