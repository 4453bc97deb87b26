"""A runtime nobody here wrote, on podnet's CNI network: Debian's podman 4.3
(CNI backend, roles/cni's containers.conf) runs containers from a busybox
root filesystem (bin/podnet-rootfs; no image registry) on two lab nodes
through /etc/cni/net.d/10-podnet.conflist (podnet-cni). They get
addresses of their node's pod CIDR from podnet's IPAM and reach each other
across nodes, and podnet's pods on their node and others, without NAT;
`podman rm` and `podman rm -f` leave nothing on the node; the cni role (and
the pods role, with a container of podman's on cni0) converges to
changed=0 and tells the truth in check mode. The lab fixture then takes the
lab down with a container still running and finds nothing of the lab
(conftest.residue), the nodes' private CNI and podman folders included."""
import ipaddress
import json

import pytest
from integration.conftest import playbook, recap, running_lab
from podnet_testlib import ROOT

pytestmark = pytest.mark.lab

ROOTFS = '/var/lib/containers/rootfs/busybox'
CONFLIST = '/etc/cni/net.d/10-podnet.conflist'
PORT = 8080


@pytest.fixture(scope='module')
def lab():
    for lab in running_lab('lab', 'lab'):
        converge(lab)
        for host in lab.hosts.values():
            host.check_output('%s %s', str(ROOT / 'bin' / 'podnet-rootfs'), ROOTFS)
        serve(lab.hosts['node3'], 'left-running')  # for make down, whose residue running_lab checks
        yield lab


def converge(lab, *args):
    return playbook(lab.inventory, 'playbooks/site.yml', *args)  # the seed's pods


def podman(host, command, *args):
    return host.check_output('podman ' + command, *args)


def serve(host, name):
    """Start busybox httpd in a container on host; return its address."""
    podman(host, 'run -d --name %s --rootfs %s httpd -f -p %s -h /www', name, ROOTFS, str(PORT))
    return podman(host, "inspect %s --format '{{.NetworkSettings.IPAddress}}'", name)


def fetch(host, url):
    """What a throwaway container on host gets from url (busybox 1.35's
    static wget -T crashes: timeout instead)."""
    return podman(host, 'run --rm --rootfs %s timeout 5 wget -qO- %s', ROOTFS, url)


def pod_cidr(host):
    return ipaddress.ip_network(host.check_output('cat /var/lib/podnet/pod-cidr'))


def pod_ip(host, name):
    return json.loads(host.check_output('cat /var/lib/podnet/pods/default_%s.json', name))['ip']


def remains(host):
    """What a container could leave on its node: network namespaces, links,
    host-local's addresses (files named after them), libcni's cached
    results, podman's containers and their storage, mounts."""
    run = host.check_output

    def listing(command):
        return run("sh -c '%s 2>/dev/null; true'" % command)
    return {'netns': run('ip netns list'),
            'links': sorted(line.split(': ')[1].split('@')[0] for line in run('ip -o link').splitlines()),
            'addresses': listing('grep -rl ^cni/ /var/lib/podnet/ipam'),  # podnet-cni's, in podnet's IPAM
            'cni cache': listing('ls /var/lib/cni/results'),
            'containers': run('podman ps -a --format {{.ID}}'),
            'storage': listing('cat /var/lib/containers/storage/overlay-containers/containers.json'),
            'mounts': sorted(line.split()[4] for line in run('cat /proc/self/mountinfo').splitlines()
                             if '/containers/' in line.split()[4])}


def test_containers_on_two_nodes_get_pod_ips_and_talk_without_nat(lab):
    node1, node2 = lab.hosts['node1'], lab.hosts['node2']
    try:
        web1, web2 = serve(node1, 'web'), serve(node2, 'web')
        assert ipaddress.ip_address(web1) in pod_cidr(node1)
        assert ipaddress.ip_address(web2) in pod_cidr(node2)
        # The receiving side sees the sender's pod IP, in the sender's pod CIDR.
        seen_on_2 = fetch(node1, 'http://%s:%d/cgi-bin/clientip' % (web2, PORT))
        assert ipaddress.ip_address(seen_on_2) in pod_cidr(node1)
        seen_on_1 = fetch(node2, 'http://%s:%d/cgi-bin/clientip' % (web1, PORT))
        assert ipaddress.ip_address(seen_on_1) in pod_cidr(node2)
        # podnet's own pods (agnhost netexec), on the other node and on its own, see it too.
        for host, pod in ((node2, 'netexec-a'), (node1, 'netexec-c')):
            client = fetch(node1, 'http://%s:8080/clientip' % pod_ip(host, pod)).rsplit(':', 1)[0]
            assert ipaddress.ip_address(client) in pod_cidr(node1), pod
    finally:
        for host in (node1, node2):
            host.run('podman rm -f -t 0 web')


@pytest.mark.parametrize('how', ['rm', 'rm -f'])
def test_podman_rm_leaves_nothing_on_the_node(lab, how):
    node2 = lab.hosts['node2']
    before = remains(node2)
    serve(node2, 'gone')
    assert remains(node2) != before
    if how == 'rm':
        podman(node2, 'stop -t 0 gone')
    podman(node2, how + ' gone')
    assert remains(node2) == before


def test_the_cni_role_converges_to_no_change_and_check_mode_tells_the_truth(lab):
    converge(lab)
    again = converge(lab)
    assert {h: c['changed'] for h, c in recap(again).items()} == {h: 0 for h in lab.hosts}, again.stdout
    node3 = lab.hosts['node3']
    wanted = node3.check_output('cat %s', CONFLIST)
    node3.check_output("sh -c 'echo {} > %s'" % CONFLIST)
    check = converge(lab, '--check', '--diff')
    assert {h: c['changed'] for h, c in recap(check).items()} == dict(node1=0, node2=0, node3=1), check.stdout
    assert 'write %s: its content differs' % CONFLIST in check.stdout and '"cniVersion": "1.0.0",' in check.stdout
    assert node3.check_output('cat %s', CONFLIST) == '{}'
    converge(lab)
    assert node3.check_output('cat %s', CONFLIST) == wanted
    conflist = json.loads(wanted)
    assert conflist['cniVersion'] == '1.0.0' and conflist['name'] == 'podnet'
    assert conflist['plugins'][0]['mtu'] == 1450
