"""G5 runs against the upstream netpol e2e model (manifests/netpol-model):
namespaces x, y, z with pods a, b, c each serving TCP and UDP on 80 and 81.
Each case converges the cluster with the model plus one set of policies,
probes every ordered pod pair with playbooks/probe.yml, and compares the
truth table with the one the Kubernetes documentation implies."""
import json
import os
import subprocess
import tempfile
import textwrap

import pytest
import yaml
from podnet_testlib import ROOT, playbook_argv, playbook_env

MODEL = 'manifests/netpol-model'
PODS = ['%s/%s' % (ns, pod) for ns in 'xyz' for pod in 'abc']
PORTS = (80, 81)
PROTOCOLS = ('TCP', 'UDP')


def ansible_playbook(inventory, *args):
    done = subprocess.run(playbook_argv(inventory, *args), cwd=ROOT, env=playbook_env(),
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError('ansible-playbook %s failed:\n%s' % (' '.join(args), done.stdout[-6000:]))
    return done.stdout


# Empties the calling namespace's IPv4 conntrack table (ctnetlink
# IPCTNL_MSG_CT_DELETE with no tuple), with python3 alone: nodes need no
# conntrack tool for it.
FLUSH_CONNTRACK = textwrap.dedent("""
    import socket, struct
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
    body = struct.pack('!BBH', socket.AF_INET, 0, 0)  # nfgenmsg
    sock.send(struct.pack('=IHHII', 16 + len(body), (1 << 8) | 2, 0x5, 1, 0) + body)
    error, = struct.unpack_from('=i', sock.recv(4096), 16)
    raise SystemExit(0 if error in (0, -2) else 'conntrack flush: errno %d' % -error)
""")


class Model:
    """The netpol model on the cluster under test, with policies applied on demand."""

    def __init__(self, inventory, folder, nodes):
        self.inventory = inventory
        self.folder = folder
        self.nodes = nodes
        self.ips = {}

    def apply(self, policies):
        """Converge the model plus these policy objects (a list of dicts)."""
        manifests = [MODEL]
        if policies:
            path = os.path.join(self.folder, 'policies.yaml')
            with open(path, 'w') as f:
                yaml.safe_dump_all(policies, f)
            manifests.append(path)
        ansible_playbook(self.inventory, 'playbooks/site.yml', '-e',
                         json.dumps({'podnet_manifests': manifests}))
        self.forget_flows()

    def forget_flows(self):
        """Empty every node's conntrack table, so each case judges new flows
        only. The policy table accepts tracked flows first, as Kubernetes
        CNIs do, and a UDP entry lives 30 s: a probe whose source port came
        back within that time would ride on the previous case's verdict."""
        for host in self.nodes.values():
            host.run_expect([0], 'python3 -c %s', FLUSH_CONNTRACK)

    def probe(self):
        """{(port, protocol): table} of the whole model, each table as
        podnet_probe_report writes it: allowed[from][to], and why[from][to]
        for the cells not allowed. The
        probe also holds every cell against the policy model explain and
        probe print their reasons from (probe_expect=model fails on any
        disagreement), so each case checks those verdicts against reality."""
        out = os.path.join(self.folder, 'probe.json')
        ansible_playbook(self.inventory, 'playbooks/probe.yml', '-e', 'probe_ports=80,81',
                         '-e', 'probe_protocols=TCP,UDP', '-e', 'probe_output=' + out,
                         '-e', 'probe_expect=model')
        with open(out) as f:
            tables = json.load(f)
        self.ips = tables[0]['ips']
        return {(t['port'], t['protocol']): t for t in tables}

    def ip(self, pod):
        """A model pod's address (probing once if no probe has run yet)."""
        if not self.ips:
            self.probe()
        return self.ips[pod]


ENABLE = 'PODNET_G5'


def running_model(inventory, nodes):
    """The model's pods on the cluster, for the `model` fixture
    (conformance/conftest.py); the seed's pods come back after."""
    if os.environ.get(ENABLE) != '1':
        pytest.skip('G5 replaces the cluster\'s pods with the netpol e2e model: set %s=1 '
                    '(the molecule scenario netpol does)' % ENABLE)
    with tempfile.TemporaryDirectory(prefix='podnet-g5-') as folder:
        found = Model(inventory, folder, nodes)
        found.apply([])
        yield found
        found.apply([])
