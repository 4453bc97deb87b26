"""The seed article's walkthrough, command for command, on the node that
runs multi-container-pod: what it shows there, the lab shows here."""
import json
import re

import pytest


@pytest.fixture(scope='module')
def seed(pods):
    if 'default/multi-container-pod' not in pods:
        pytest.fail('the seed pod default/multi-container-pod is not running')
    return pods['default/multi-container-pod']


def lsns(host, kind):
    out = host.check_output('lsns --list -J -t %s -o NS,NPROCS,PID,NSFS,COMMAND' % kind)
    return json.loads(out)['namespaces']


def test_lsns_net_shows_pause_holding_the_pod_netns_with_its_containers(seed):
    rows = [r for r in lsns(seed.host, 'net') if r['nsfs'] == '/run/netns/' + seed.netns]
    assert len(rows) == 1, rows
    assert rows[0]['command'].endswith('/pause') and int(rows[0]['pid']) == seed.pause_pid
    # pause, sleep, and gunicorn's master and worker, as in the article
    assert int(rows[0]['nprocs']) == 4


def test_lsns_pid_shows_separate_namespaces_for_pause_sleep_and_gunicorn(seed):
    commands = {r['command']: int(r['nprocs']) for r in lsns(seed.host, 'pid')}
    assert commands.get('/pause') is not None
    assert commands.get('sleep 365d') == 1
    gunicorn = [c for c in commands if 'gunicorn -b 0.0.0.0:80 httpbin:app -k gevent' in c]
    assert gunicorn and commands[gunicorn[0]] == 2, commands


def test_ip_netns_identify_names_the_pod_sandbox(seed):
    assert seed.host.check_output('ip netns identify %s', str(seed.containers['httpbin'])) == seed.netns


def test_pod_eth0_pairs_with_a_veth_on_cni0(seed):
    inside = seed.run('ip a').stdout
    match = re.search(r'^2: eth0@if(\d+): .* mtu (\d+) .* state UP', inside, re.M)
    assert match, inside
    assert re.search(r'inet %s/24 brd \S+\.255 scope global eth0' % re.escape(seed.ip), inside)
    peer = seed.host.check_output('ip link | grep -A1 ^%s:' % match.group(1))
    assert re.match(r'%s: veth[0-9a-f]{8}@if2: .* mtu %s .* master cni0 state UP'
                    % (match.group(1), match.group(2)), peer), peer
    assert 'link-netns %s' % seed.netns in peer


def test_mtu_is_1450_under_vxlan(seed, underlay):
    if seed.host.run('test -e /sys/class/net/flannel.1').rc != 0:
        pytest.skip('backend is host-gw: no vxlan overhead (G7 checks its MTU)')
    # The node's underlay NIC: eth0 on lab nodes, ens3 or so on VMs.
    nic = seed.host.check_output("ip -4 -o addr show to %s | cut -d' ' -f2" % underlay[seed.node])
    underlay_mtu = int(seed.host.check_output('cat /sys/class/net/%s/mtu' % nic))
    assert 'mtu %d' % (underlay_mtu - 50) in seed.run('ip link show eth0').stdout
