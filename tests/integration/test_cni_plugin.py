"""podnet-cni as a runtime drives it: the real executable
(roles/cni/files/podnet-cni) exec'd with CNI_COMMAND, CNI_CONTAINERID,
CNI_NETNS, CNI_IFNAME and CNI_PATH in its environment and the network
configuration on stdin, inside a throwaway node: new network, mount and
PID namespaces with a private /run and /var/lib/podnet, its own cni0
(10.42.9.1/24, MTU 1450) and pod CIDR. Killing the node's holder kills
every process in it (the resident server included) and frees its
namespaces, links and files, whether the test passed or not: nothing is
made in the root namespace.

Every verb, every spec version, the error paths with their codes and no
residue after them, DEL twice, GC, STATUS 50 and 51, IPAM shared with
podnet's pods and delegated to Debian's host-local, two containers
reaching each other over cni0, through the source guard of a node with
pods; served by the resident server and direct.
"""
import fcntl
import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.pods import srcguard
from podnet_testlib import ROOT, staged_collection

PLUGIN = str(ROOT / 'roles' / 'cni' / 'files' / 'podnet-cni')
CNI_BIN = '/usr/lib/cni'
POD_CIDR, GATEWAY = '10.42.9.0/24', '10.42.9.1'
IPAM = '/var/lib/podnet/ipam/10.42.9.0_24'
VERSIONS = ('0.4.0', '1.0.0', '1.1.0')
SETUP = '''set -e
mount -t tmpfs tmpfs /run
mkdir -p /var/lib/podnet && mount -t tmpfs tmpfs /var/lib/podnet
ip link set lo up
ip link add cni0 type bridge
ip link set cni0 mtu 1450 up
ip addr add %s/24 dev cni0
echo %s > /var/lib/podnet/pod-cidr
touch /run/node-ready
exec sleep infinity
''' % (GATEWAY, POD_CIDR)


class Node:
    """The throwaway node: run() a command in it, cni() a plugin call."""

    def __init__(self, server=True):
        self.server = server
        self.plugin = PLUGIN  # the executable cni() runs (another install's in a test of it)
        self.holder = subprocess.Popen(
            ['unshare', '--net', '--mount', '--pid', '--fork', '--kill-child', '--mount-proc',
             '--propagation', 'private', 'sh', '-c', SETUP], stdin=subprocess.DEVNULL)
        self.pid = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.pid = self.pid or _child(self.holder.pid)
            if self.pid and self.run(['test', '-e', '/run/node-ready'], check=False).returncode == 0:
                return
            time.sleep(0.05)
        self.destroy()
        raise RuntimeError('the throwaway node did not come up')

    def run(self, argv, check=True, **kwargs):
        done = subprocess.run(['nsenter', '--target', str(self.pid), '--net', '--mount', '--pid', '--'] + argv,
                              capture_output=True, text=True, timeout=60, **kwargs)
        if check and done.returncode != 0:
            raise AssertionError('%s: %s%s' % (' '.join(argv), done.stdout, done.stderr))
        return done

    def cni(self, verb, container='c1', netns=None, ifname='eth0', conf=None, env=None, stdin=None, **fields):
        """(exit status, the printed document or None)."""
        conf = dict(conf or config(), **fields)
        variables = dict(os.environ, CNI_COMMAND=verb, CNI_CONTAINERID=container,
                         CNI_NETNS='/run/netns/' + (netns or container), CNI_IFNAME=ifname, CNI_PATH=CNI_BIN)
        if not self.server:
            variables['PODNET_CNI_SERVER'] = '0'
        variables.update(env or {})
        variables = {k: v for k, v in variables.items() if v is not None}
        done = self.run([str(self.plugin)], check=False, env=variables,
                        input=json.dumps(conf) if stdin is None else stdin)
        return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None

    def netns(self, *names):
        for name in names:
            self.run(['ip', 'netns', 'add', name])

    def links(self, netns=None):
        prefix = ['ip', 'netns', 'exec', netns] if netns else []
        return {link['ifname']: link for link in json.loads(self.run(prefix + ['ip', '-j', 'link']).stdout)}

    def addresses(self, netns, ifname='eth0'):
        shown = json.loads(self.run(['ip', 'netns', 'exec', netns, 'ip', '-j', '-4', 'addr', 'show', ifname]).stdout)
        return ['%s/%d' % (a['local'], a['prefixlen']) for link in shown for a in link['addr_info']]

    def ipam(self, folder=IPAM):
        """{address: owner} of the IPAM files."""
        listed = self.run(['sh', '-c', 'cd %s 2>/dev/null && grep -H "" [0-9]* | grep -v ":eth\\|:net"; true'
                           % folder]).stdout
        return dict(line.split(':', 1) for line in listed.split())

    def veths(self):
        return sorted(name for name in self.links() if name.startswith('veth'))

    def settled_veths(self, want, timeout=3):
        """The host veths, once they are as wanted (a DEL answered by the
        server leaves the kernel to finish removing the pair)."""
        deadline = time.monotonic() + timeout
        while self.veths() != want and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.veths()

    def server_pid(self, timeout=5):
        """The pid of the node's one resident server, once it listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.run(['pgrep', '-f', 'launch.py serve'], check=False).stdout.split()
            listening = self.run(['test', '-S', '/run/podnet/cni.sock'], check=False).returncode == 0
            if len(found) == 1 and listening:
                return found[0]
            time.sleep(0.05)
        return None

    def start_server(self):
        """The first call starts the server: then it answers every call."""
        assert self.cni('VERSION', stdin='{"cniVersion": "1.1.0"}')[0] == 0
        if self.server_pid() is None:
            raise RuntimeError('the resident server did not come up')

    def destroy(self):
        self.holder.send_signal(signal.SIGKILL)  # --kill-child: PID 1 of the node goes, and all in it
        self.holder.wait(timeout=30)


def _child(pid):
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
            found = f.read().split()
    except FileNotFoundError:
        return None
    return int(found[0]) if found else None


def config(version='1.1.0', **fields):
    return dict({'cniVersion': version, 'name': 'podnet', 'type': 'podnet-cni'}, **fields)


@pytest.fixture(params=['server', 'direct'])
def node(request):
    """A node whose calls are served by its resident server (started, and
    waited for, before the test's first call), or each by its own Python."""
    made = Node(server=request.param == 'server')
    try:
        if made.server:
            made.start_server()
        yield made
    finally:
        made.destroy()


@pytest.fixture
def fast_node():
    """A node whose calls go through the resident server (but its first)."""
    made = Node()
    try:
        yield made
    finally:
        made.destroy()


@pytest.mark.parametrize('version', VERSIONS)
def test_add_check_del_in_every_version(node, version):
    node.netns('c1')
    status, result = node.cni('ADD', conf=config(version))
    assert status == 0, result
    assert result['cniVersion'] == version
    host, eth0 = result['interfaces']
    assert host['name'].startswith('veth') and 'sandbox' not in host
    assert eth0['name'] == 'eth0' and eth0['sandbox'] == '/run/netns/c1'
    ip = result['ips'][0]
    assert ip['address'].startswith('10.42.9.') and ip['address'].endswith('/24')
    assert ip['gateway'] == GATEWAY and ip['interface'] == 1
    assert ('version' in ip) == (version == '0.4.0')
    assert result['routes'] == [{'dst': '0.0.0.0/0', 'gw': GATEWAY}]
    assert node.addresses('c1') == [ip['address']]
    inside = node.links('c1')['eth0']
    assert inside['address'] == eth0['mac'] and inside['mtu'] == 1450
    assert node.links()[host['name']]['master'] == 'cni0'
    assert node.ipam() == {ip['address'].split('/')[0]: 'cni/podnet/c1/eth0'}

    assert node.cni('CHECK', conf=config(version, prevResult=result)) == (0, None)
    assert node.cni('DEL', conf=config(version, prevResult=result)) == (0, None)
    assert node.cni('DEL', conf=config(version, prevResult=result)) == (0, None)
    assert node.settled_veths([]) == [] and node.ipam() == {}
    assert 'eth0' not in node.links('c1')


def test_version_lists_what_podnet_speaks(node):
    for version in VERSIONS:
        assert node.cni('VERSION', conf={'cniVersion': version}) == (
            0, {'cniVersion': version, 'supportedVersions': list(VERSIONS)})
    assert node.cni('VERSION', stdin='')[1]['supportedVersions'] == list(VERSIONS)


def test_add_refuses_an_interface_that_exists_and_del_leaves_it(node):
    node.netns('c1')
    node.run(['ip', 'netns', 'exec', 'c1', 'ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'theirs0'])
    status, error = node.cni('ADD')
    assert status == 1 and error['code'] == 101 and 'eth0' in error['details']
    assert node.ipam() == {} and node.veths() == []
    assert node.cni('DEL') == (0, None)  # the runtime's DEL after a failed ADD
    assert 'eth0' in node.links('c1'), 'DEL removed an interface it did not make'


def test_a_second_add_of_the_same_attachment_fails_and_keeps_the_first(node):
    node.netns('c1')
    status, first = node.cni('ADD')
    assert status == 0
    status, error = node.cni('ADD')
    assert (status, error['code']) == (1, 101)
    assert node.ipam() == {first['ips'][0]['address'].split('/')[0]: 'cni/podnet/c1/eth0'}
    assert node.veths() == [first['interfaces'][0]['name']]


@pytest.mark.parametrize('case, conf, env, code, named', [
    ('unknown version', config('0.3.1'), {}, 1, '0.3.1'),
    ('malformed version', config('one'), {}, 6, 'one'),
    ('STATUS before 1.1.0', config('1.0.0'), {'CNI_COMMAND': 'STATUS'}, 1, 'STATUS'),
    ('missing name', {'cniVersion': '1.1.0', 'type': 'podnet-cni'}, {}, 7, 'name'),
    ('bad subnet', config(ipam={'subnet': '10.42.9.0/33'}), {}, 7, 'ipam.subnet'),
    ('subnet too small', config(ipam={'subnet': '10.42.9.0/31'}), {}, 7, 'ipam.subnet'),
    ('unknown IPAM field', config(ipam={'rangeStart': '10.42.9.9'}), {}, 2, 'ipam.rangeStart'),
    ('bad mtu', config(mtu=20), {}, 7, 'mtu'),
    ('missing netns', config(), {'CNI_NETNS': '/run/netns/nowhere'}, 3, '/run/netns/nowhere'),
    ('missing environment', config(), {'CNI_NETNS': None, 'CNI_PATH': None}, 4, 'CNI_NETNS, CNI_PATH'),
    ('bad command', config(), {'CNI_COMMAND': 'ATTACH'}, 4, 'CNI_COMMAND'),
    ('bad container id', config(), {'CNI_CONTAINERID': '-x'}, 4, 'CNI_CONTAINERID'),
    ('interface name too long', config(), {'CNI_IFNAME': 'a' * 16}, 4, 'CNI_IFNAME'),
    ('no bridge', config(bridge='nobridge0'), {}, 104, 'nobridge0'),
    ('no pod CIDR', config(stateDir='/run/empty-state'), {}, 11, 'pod-cidr'),
    ('missing IPAM plugin', config(ipam={'type': 'no-such-ipam'}), {}, 7, 'no-such-ipam'),
])
def test_bad_input_fails_with_its_code_and_leaves_nothing(node, case, conf, env, code, named):
    node.netns('c1')
    before = node.links()
    status, error = node.cni('ADD', conf=conf, env=env)
    assert status == 1, case
    assert error['code'] == code, error
    assert named in error['msg'] + error.get('details', ''), error
    assert node.ipam() == {} and node.links() == before and list(node.links('c1')) == ['lo']


@pytest.mark.parametrize('stdin', ['{"cniVersion": ', '[1, 2]', '\xff'])
def test_undecodable_stdin_is_code_6(node, stdin):
    node.netns('c1')
    status, error = node.cni('ADD', stdin=stdin)
    assert (status, error['code']) == (1, 6) and node.ipam() == {}


STAND_IN = """#!/bin/sh
echo "$CNI_COMMAND" >> /run/stand-in.log
[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion": "1.0.0", "ips": [{"address": "10.42.9.50/24",
  "gateway": "10.42.9.1"}], "routes": [{"dst": "10.96.0.0/12", "gw": "10.99.0.1"}]}'
exit 0
"""


def test_an_add_that_fails_midway_takes_back_what_it_made(node):
    """The kernel refuses the last step (a route via a gateway no interface
    reaches): the veth, its address inside and the lease all go, the IPAM
    plugin being told DEL, before the error is printed."""
    node.netns('c1')
    node.run(['sh', '-c', 'mkdir -p /run/cni-bin && cat > /run/cni-bin/stand-in && chmod 755 /run/cni-bin/stand-in'],
             input=STAND_IN)
    status, error = node.cni('ADD', ipam={'type': 'stand-in'}, env={'CNI_PATH': '/run/cni-bin'})
    assert (status, error['code']) == (1, 100) and '10.99.0.1' not in node.run(['ip', 'route']).stdout
    assert 'eth0' in error['details']
    assert node.settled_veths([]) == [] and list(node.links('c1')) == ['lo']
    assert node.run(['cat', '/run/stand-in.log']).stdout.split() == ['ADD', 'DEL']


def test_del_succeeds_without_prev_result_or_netns(node):
    node.netns('c1')
    assert node.cni('ADD')[0] == 0
    node.run(['ip', 'netns', 'del', 'c1'])
    assert node.cni('DEL') == (0, None)
    assert node.cni('DEL', env={'CNI_NETNS': None}) == (0, None)
    assert node.settled_veths([]) == [] and node.ipam() == {}


def test_check_names_what_differs(node):
    node.netns('c1')
    _, result = node.cni('ADD')
    address = result['ips'][0]['address']
    wrong_mac = json.loads(json.dumps(result))
    wrong_mac['interfaces'][1]['mac'] = '02:00:00:00:00:01'
    status, error = node.cni('CHECK', prevResult=wrong_mac)
    assert (status, error['code']) == (1, 102) and '02:00:00:00:00:01' in error['details']
    node.run(['ip', 'netns', 'exec', 'c1', 'ip', 'addr', 'del', address, 'dev', 'eth0'])
    status, error = node.cni('CHECK', prevResult=result)
    assert (status, error['code']) == (1, 102)
    assert 'address %s missing' % address in error['details'] and 'no default route' in error['details']
    status, error = node.cni('CHECK')
    assert (status, error['code']) == (1, 7) and 'prevResult' in error['details']


def test_prev_result_is_passed_on_merged(node):
    node.netns('c1')
    earlier = {'cniVersion': '1.1.0', 'interfaces': [{'name': 'earlier0', 'mac': '02:00:00:00:00:02'}],
               'ips': [{'address': '10.99.0.5/24', 'interface': 0}],
               'routes': [{'dst': '10.99.0.0/16'}], 'dns': {'nameservers': ['10.43.0.10']}}
    status, result = node.cni('ADD', prevResult=earlier)
    assert status == 0
    assert result['interfaces'][0] == earlier['interfaces'][0] and len(result['interfaces']) == 3
    assert result['ips'][0] == earlier['ips'][0] and result['ips'][1]['interface'] == 2
    assert result['routes'][0] == earlier['routes'][0] and result['dns'] == earlier['dns']
    assert node.cni('CHECK', prevResult=result) == (0, None)


def test_mtu_from_the_config_else_the_bridge(node):
    node.netns('c1', 'c2')
    node.cni('ADD', container='c1', mtu=1400)
    node.cni('ADD', container='c2')
    assert node.links('c1')['eth0']['mtu'] == 1400 and node.links('c2')['eth0']['mtu'] == 1450


def test_gc_keeps_the_valid_attachment_and_releases_the_other(node):
    node.netns('c1', 'c2')
    _, kept = node.cni('ADD', container='c1')
    node.cni('ADD', container='c2')
    status, _ = node.cni('GC', **{'cni.dev/valid-attachments': [{'containerID': 'c1', 'ifname': 'eth0'}]})
    assert status == 0
    assert node.ipam() == {kept['ips'][0]['address'].split('/')[0]: 'cni/podnet/c1/eth0'}
    assert node.settled_veths([kept['interfaces'][0]['name']]) == [kept['interfaces'][0]['name']]
    assert 'eth0' not in node.links('c2')
    assert node.cni('CHECK', container='c1', prevResult=kept) == (0, None)


def test_status_ready_not_available_and_hurting(node):
    assert node.cni('STATUS') == (0, None)
    status, error = node.cni('STATUS', bridge='nobridge0')
    assert (status, error['code']) == (1, 50) and 'nobridge0' in error['details']
    status, error = node.cni('STATUS', stateDir='/run/empty-state')
    assert (status, error['code']) == (1, 50) and 'pod CIDR' in error['details']
    node.run(['sh', '-c', 'mkdir /run/read-only && echo %s > /run/read-only/pod-cidr && '
              'mount --bind /run/read-only /run/read-only && mount -o remount,bind,ro /run/read-only' % POD_CIDR])
    status, error = node.cni('STATUS', stateDir='/run/read-only')
    assert (status, error['code']) == (1, 50) and 'not writable' in error['details']
    node.run(['ip', 'link', 'set', 'cni0', 'down'])
    status, error = node.cni('STATUS')
    assert (status, error['code']) == (1, 51) and 'down' in error['details']


def test_two_containers_reach_each_other_over_cni0(fast_node):
    node = fast_node
    node.netns('c1', 'c2')
    _, first = node.cni('ADD', container='c1')
    _, second = node.cni('ADD', container='c2')
    other = second['ips'][0]['address'].split('/')[0]
    assert first['ips'][0]['address'] != second['ips'][0]['address']
    ping = node.run(['ip', 'netns', 'exec', 'c1', 'ping', '-c', '1', '-W', '2', other], check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    node.run(['ip', 'netns', 'exec', 'c2', 'ping', '-c', '1', '-W', '2', GATEWAY])


def test_the_source_guard_of_a_node_with_pods_lets_attachments_send(node):
    """On a node where podnet runs pods, its source guard drops a cni0 port
    it has no chain for: ADD renders it again (after the answer, when the
    server serves it), with the container's MAC and address."""
    commands = nft.table_commands(srcguard.FAMILY, srcguard.TABLE, *srcguard.ruleset([]))
    node.run(['nft', '-j', '-f', '-'], input=json.dumps(commands))
    node.netns('c1', 'c2')
    _, first = node.cni('ADD', container='c1')
    _, second = node.cni('ADD', container='c2')
    other = second['ips'][0]['address'].split('/')[0]
    ping = node.run(['ip', 'netns', 'exec', 'c1', 'ping', '-c', '1', '-w', '3', other], check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    table = node.run(['nft', 'list', 'table', srcguard.FAMILY, srcguard.TABLE]).stdout
    for result in (first, second):
        host, eth0 = result['interfaces']
        assert 'chain %s' % host['name'] in table and eth0['mac'] in table
    spoofed = node.run(['ip', 'netns', 'exec', 'c1', 'ip', 'addr', 'add', '10.42.9.200/24', 'dev', 'eth0'])
    assert spoofed.returncode == 0
    ping = node.run(['ip', 'netns', 'exec', 'c1', 'ping', '-c', '1', '-W', '1', '-I', '10.42.9.200', other],
                    check=False)
    assert ping.returncode != 0, 'the guard let a forged source address through'


def test_an_add_under_the_pods_module_s_lock_leaves_the_guard_to_it(node):
    """Regression: the pods module holds the node's lock while it runs its
    podnet-cni chain's ADD, and the ADD's refresh of the source guard waited
    for that lock (the pods module gave up on the ADD after a minute). With
    sourceGuard caller (the pods role's list), served or direct, the ADD
    answers at once and leaves the guard, which the pods module renders
    next, as it was."""
    commands = nft.table_commands(srcguard.FAMILY, srcguard.TABLE, *srcguard.ruleset([]))
    node.run(['nft', '-j', '-f', '-'], input=json.dumps(commands))
    before = node.run(['nft', 'list', 'table', srcguard.FAMILY, srcguard.TABLE]).stdout
    node.netns('c1')
    lock = os.open('/proc/%d/root/var/lib/podnet/lock' % node.pid, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as the pods module's run holds it
        started = time.monotonic()
        status, result = node.cni('ADD', sourceGuard='caller')
        took = time.monotonic() - started
    finally:
        os.close(lock)
    assert status == 0 and took < 5, (result, took)
    time.sleep(0.3)  # a refresh the server ran after the answer would be done by now
    assert node.run(['nft', 'list', 'table', srcguard.FAMILY, srcguard.TABLE]).stdout == before
    assert node.cni('DEL', sourceGuard='caller', prevResult=result) == (0, None)


def test_pods_and_containers_share_the_ipam_files(fast_node):
    """An address a pod holds (its uid in the file) is never given to a
    container, and concurrent ADDs never share one."""
    node = fast_node
    pod_uid = '8f0c6b1e-2f7e-4c1a-9a53-0e5a7d1c2b3a'
    node.run(['sh', '-c', 'mkdir -p %s && printf "%s\\neth0\\n" > %s/10.42.9.2' % (IPAM, pod_uid, IPAM)])
    names = ['c%d' % i for i in range(8)]
    node.netns(*names)
    with ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(lambda name: node.cni('ADD', container=name), names))
    assert all(status == 0 for status, _ in results), results
    addresses = [r['ips'][0]['address'].split('/')[0] for _, r in results]
    assert len(set(addresses)) == len(names) and '10.42.9.2' not in addresses
    assert node.ipam()['10.42.9.2'] == pod_uid


def test_ipam_delegated_to_host_local(node):
    node.netns('c1')
    ipam = {'type': 'host-local', 'ranges': [[{'subnet': POD_CIDR, 'rangeStart': '10.42.9.100'}]],
            'dataDir': '/run/host-local'}
    for version in VERSIONS:
        status, result = node.cni('ADD', conf=config(version, ipam=ipam))
        assert status == 0, result
        address = result['ips'][0]['address'].split('/')[0]
        assert address.startswith('10.42.9.1') and int(address.split('.')[3]) >= 100 and node.ipam() == {}
        assert node.addresses('c1') == [address + '/24']
        assert node.ipam('/run/host-local/podnet') == {address: 'c1'}
        assert node.cni('CHECK', conf=config(version, ipam=ipam, prevResult=result)) == (0, None)
        assert node.cni('DEL', conf=config(version, ipam=ipam, prevResult=result)) == (0, None)
        assert node.ipam('/run/host-local/podnet') == {}
        node.settled_veths([])
    assert node.cni('STATUS', ipam=ipam) == (0, None)
    assert node.cni('GC', ipam=ipam, **{'cni.dev/valid-attachments': []}) == (0, None)


def test_a_server_retires_when_its_code_changes(fast_node):
    """A call after podnet's files change is served by the new code: the
    old server answers `retry` and goes, the call runs direct and starts a
    new one."""
    node = fast_node
    node.netns('c1')
    assert node.cni('ADD')[0] == 0
    first = node.server_pid()
    os.utime(ROOT / 'module_utils' / 'podnet' / 'cniplugin' / 'config.py')
    assert node.cni('DEL')[0] == 0
    assert node.settled_veths([]) == [] and node.ipam() == {}
    second = node.server_pid()
    assert first and second and first != second


def server_code(node, pid):
    """The launcher a server runs (its command line's)."""
    return node.run(['cat', '/proc/%s/cmdline' % pid]).stdout.split('\0')[3]


def test_the_server_runs_the_code_of_the_plugin_called(fast_node, tmp_path):
    """The node's plugin re-pointed from the tree to an installed collection
    (the cni role run from the collection) and back: the other install's
    server answers retry and goes, the call runs direct from the plugin's
    own code, which starts a server of that code; that server then serves."""
    node, collection = fast_node, staged_collection(tmp_path / 'build')
    launcher = collection / 'plugins' / 'module_utils' / 'podnet' / 'cniplugin' / 'launch.py'
    node.netns('c1', 'c2')
    assert node.cni('ADD')[0] == 0
    tree_server = node.server_pid()
    assert server_code(node, tree_server) == str(ROOT / 'module_utils' / 'podnet' / 'cniplugin' / 'launch.py')
    node.plugin = tmp_path / 'podnet-cni'
    node.plugin.symlink_to(collection / 'roles' / 'cni' / 'files' / 'podnet-cni')
    assert node.cni('DEL')[0] == 0
    collection_server = node.server_pid()
    assert collection_server != tree_server and server_code(node, collection_server) == str(launcher)
    launcher.rename(launcher.with_name('moved.py'))  # a direct call would fail: only the server can answer
    assert node.cni('ADD', container='c2')[0] == 0 and node.server_pid() == collection_server
    launcher.with_name('moved.py').rename(launcher)
    node.plugin = PLUGIN
    assert node.cni('DEL', container='c2')[0] == 0
    assert node.server_pid() not in (tree_server, collection_server, None)
    assert node.settled_veths([]) == [] and node.ipam() == {}
