"""podnet's pods wired by podnet's own plugin as a chain (podnet_cni=
podnet-cni) on the 3-node lab, from nodes never converged and back to
native: what make grade-cni does not see, since it converges once per part.

Regressions: a dry run on nodes the cni role never converged failed (the
plugin is linked by that role); the pods module held the node's lock
through podnet-cni's ADD, whose refresh of the source guard waited for it
(the first converge failed after a minute per node); a pod, a record and a
podnet-cni attachment at once, got two guard chains of one name; and a run
that removed such pods rendered the guard with their attachments, so the
next converge changed it again. The tests run in order, on one lab."""
import pytest
from integration.conftest import playbook, pod_records, recap, running_lab

pytestmark = pytest.mark.lab

PODNET_CNI = ('-e', 'podnet_cni=podnet-cni')


@pytest.fixture(scope='module')
def lab():
    yield from running_lab('lab', 'lab', fresh=True)  # the dry run wants nodes site.yml never saw


def converge(lab, *args):
    return recap(playbook(lab.inventory, 'playbooks/site.yml', *args))


def owners(host):
    """{address: owner} of the node's IPAM files."""
    listed = host.check_output("sh -c 'cd /var/lib/podnet/ipam/* && grep -m1 -H \"\" [0-9]*'")
    return dict(line.split(':', 1) for line in listed.split())


def guard_ports(host):
    table = host.check_output('nft list table bridge podnet-guard')
    return sorted(line.split()[1] for line in table.splitlines() if line.strip().startswith('chain veth'))


def test_a_dry_run_on_nodes_never_converged_finds_podnet_cni(lab):
    done = playbook(lab.inventory, 'playbooks/site.yml', '--check', '--diff', *PODNET_CNI)
    assert 'create default/multi-container-pod' in done.stdout
    assert all(pod_records(host) == [] for host in lab.hosts.values())


def test_pods_wired_by_podnet_cni_converge_then_change_nothing(lab):
    converge(lab, *PODNET_CNI)
    for name, host in lab.hosts.items():
        records = pod_records(host)
        assert records, name
        for record in records:
            assert record['cni']['name'] == 'podnet-cni', (name, record['name'])
            assert ' master cni0 ' in host.check_output('ip -o link show dev %s', record['veth'])
        assert owners(host) == {r['ip']: 'cni/podnet-cni/%s/eth0' % r['uid'] for r in records}
        assert guard_ports(host) == sorted(r['veth'] for r in records), name
    assert {n: c['changed'] for n, c in converge(lab, *PODNET_CNI).items()} == dict.fromkeys(lab.hosts, 0)


def test_back_to_native_removes_them_with_their_del_and_changes_nothing_after(lab):
    converge(lab)
    for name, host in lab.hosts.items():
        records = pod_records(host)
        assert all('cni' not in r for r in records), name
        assert owners(host) == {r['ip']: r['uid'] for r in records}, name
        assert guard_ports(host) == sorted(r['veth'] for r in records), name
        assert host.check_output('ls -A /var/lib/podnet/cni/results') == '', name
    assert {n: c['changed'] for n, c in converge(lab).items()} == dict.fromkeys(lab.hosts, 0)
