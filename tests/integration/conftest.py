"""Integration fixtures: a real lab, brought up once and always torn down."""
import json
import os
import re
import subprocess

import pytest
from ansible.module_utils.podnet.kernel import cgroups
from podnet_testlib import ROOT, inventory_nodes, playbook_argv, playbook_env, testinfra_host

VENV_BIN = ROOT / '.venv' / 'bin'
RECAP = re.compile(r'^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


def start_playbook(inventory, *args):
    """Start a project playbook as a user would; return the running process."""
    return subprocess.Popen(playbook_argv(inventory, *args), cwd=ROOT, env=playbook_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, check=True, timeout=300):
    """Wait for a started playbook; with check, fail the test unless rc=0."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    if check and done.returncode != 0:
        raise AssertionError('%s failed:\n%s%s' % (' '.join(process.args), done.stdout, done.stderr))
    return done


def playbook(inventory, *args, check=True, timeout=300):
    """Run a project playbook as a user would; return the finished process."""
    return finish(start_playbook(inventory, *args), check, timeout)


def recap(done):
    """{host: {'changed': n, 'unreachable': n, 'failed': n}} from the recap."""
    return {h: dict(changed=int(c), unreachable=int(u), failed=int(f))
            for h, c, u, f in RECAP.findall(done.stdout)}


def pod_records(host, state_dir='/var/lib/podnet'):
    """Every pod record a node keeps, as dicts (netns, ip, name...)."""
    text = host.check_output("sh -c 'cat %s/pods/*.json 2>/dev/null; true'" % state_dir).strip()
    decoder, found = json.JSONDecoder(), []
    while text:
        record, end = decoder.raw_decode(text)
        found.append(record)
        text = text[end:].strip()
    return found


def lab_inits(lab):
    """(pid, argv) of every init process of lab `lab`, found by command line."""
    return [(pid, argv) for pid, argv in command_lines()
            if any(a.endswith(b'podnet-lab-init') for a in argv) and lab.encode() in argv]


def lab_vms(lab):
    """(pid, argv) of every qemu of lab `lab` (its files are in .lab/<lab>/)."""
    run_dir = str(ROOT / '.lab' / lab).encode() + b'/'
    return [(pid, argv) for pid, argv in command_lines()
            if b'qemu-system' in argv[0] and any(run_dir in a for a in argv)]


def command_lines():
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            yield int(pid), open('/proc/%s/cmdline' % pid, 'rb').read().split(b'\0')
        except OSError:
            continue


def residue(lab, mgmt_addresses):
    """Everything of lab `lab` still on the machine, as readable strings."""
    found = []
    links = subprocess.run(['ip', '-o', 'link'], capture_output=True, text=True).stdout
    found += ['link ' + line.split(': ')[1].split('@')[0] for line in links.splitlines()
              if line.split(': ')[1].startswith('pn%s-' % lab)]
    found += ['process %s %s' % (pid, b' '.join(argv).decode())
              for pid, argv in lab_inits(lab) + lab_vms(lab)]
    mounts = open('/proc/self/mountinfo').read()
    found += ['mount ' + line for line in mounts.splitlines() if '/.lab/' in line or '/var/lib/podnet' in line]
    if os.path.exists('/run/netns') and os.listdir('/run/netns'):
        found.append('named netns in root: %s' % os.listdir('/run/netns'))
    if (ROOT / '.lab' / lab).exists():
        found.append('run folder .lab/%s' % lab)
    found += ['cgroup ' + f for f in cgroups.lab_folders(lab, cgroups.read_hierarchies())]
    cp = ROOT / '.lab' / 'cp'
    sockets = os.listdir(cp) if cp.exists() else []
    found += ['ssh control socket ' + s for s in sockets if s.split('-')[0] in mgmt_addresses]
    return found


class LabUnderTest:
    def __init__(self, inventory, name):
        self.inventory = inventory
        self.name = name
        self.vars = inventory_nodes(inventory)
        self.hosts = {n: testinfra_host(v) for n, v in self.vars.items()}
        # A VM converges in minutes under TCG (packages, venv); a netns node in seconds.
        on_vms = any(v.get('podnet_lab_kind') == 'qemu' for v in self.vars.values())
        self.timeout = 1500 if on_vms else 300

    def up(self, *args):
        return playbook(self.inventory, 'playbooks/lab.yml', *args, timeout=self.timeout)

    def residue(self):
        return residue(self.name, [v['ansible_host'] for v in self.vars.values()])

    def down(self):
        return playbook(self.inventory, 'playbooks/lab.yml', '-e', 'lab_state=absent',
                        timeout=self.timeout)


def running_lab(inventory, name, fresh=False):
    """Bring a lab up for a fixture (fresh: down first, so no node keeps
    what an earlier run left); always tear it down, then demand zero residue."""
    lab = LabUnderTest(ROOT / 'inventories' / inventory, name)
    try:
        if fresh:
            lab.down()
        lab.up()
        yield lab
    finally:
        lab.down()
        assert lab.residue() == []


@pytest.fixture(scope='session')
def multirack():
    yield from running_lab('multirack', 'mrack')
