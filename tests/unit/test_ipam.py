"""HostLocalIpam: round-robin allocation, no reuse while a file exists,
release of unowned addresses, exhaustion, and the files it leaves."""
from pathlib import Path

import pytest
from ansible.module_utils.podnet.pods.ipam import HostLocalIpam, IpamError

SMALL = '10.42.1.0/29'  # .0 network, .1 gateway, .7 broadcast: .2-.6 for pods


def test_first_addresses_skip_network_and_gateway(tmp_path):
    ipam = HostLocalIpam(str(tmp_path), '10.42.1.0/24')
    assert [ipam.allocate('pod%d' % i) for i in range(3)] == [
        '10.42.1.2', '10.42.1.3', '10.42.1.4']


def test_a_whole_small_cidr_skips_broadcast_then_is_exhausted(tmp_path):
    ipam = HostLocalIpam(str(tmp_path), SMALL)
    given = [ipam.allocate('pod%d' % i) for i in range(5)]
    assert given == ['10.42.1.%d' % i for i in range(2, 7)]
    assert ipam.capacity() == 5
    with pytest.raises(IpamError, match='exhausted'):
        ipam.allocate('one-too-many')


def test_a_slash_30_has_one_pod_address(tmp_path):
    ipam = HostLocalIpam(str(tmp_path), '10.42.1.0/30')
    assert ipam.allocate('a') == '10.42.1.2'
    with pytest.raises(IpamError):
        ipam.allocate('b')


def test_a_released_address_is_not_handed_to_the_next_pod(tmp_path):
    ipam = HostLocalIpam(str(tmp_path), SMALL)
    first = ipam.allocate('a')
    ipam.allocate('b')
    ipam.release(first)
    assert ipam.allocate('c') == '10.42.1.4'


def test_allocation_wraps_around_to_freed_addresses(tmp_path):
    ipam = HostLocalIpam(str(tmp_path), SMALL)
    for i in range(5):
        ipam.allocate('pod%d' % i)
    ipam.release('10.42.1.3')
    assert ipam.allocate('late') == '10.42.1.3'


def test_round_robin_survives_a_new_instance(tmp_path):
    HostLocalIpam(str(tmp_path), SMALL).allocate('a')
    HostLocalIpam(str(tmp_path), SMALL).release('10.42.1.2')
    assert HostLocalIpam(str(tmp_path), SMALL).allocate('b') == '10.42.1.3'


def test_an_address_whose_file_exists_is_never_reused(tmp_path):
    ipam = HostLocalIpam(str(tmp_path), SMALL)
    ipam.allocate('a')
    (tmp_path / 'ipam' / '10.42.1.0_29' / 'last_reserved_ip').unlink()
    assert ipam.allocate('b') == '10.42.1.3'


def test_files_name_the_address_and_hold_owner_and_interface(tmp_path):
    ipam = HostLocalIpam(str(tmp_path), SMALL)
    ipam.allocate('sandbox-1')
    folder = tmp_path / 'ipam' / '10.42.1.0_29'
    assert sorted(p.name for p in folder.iterdir()) == ['10.42.1.2', 'last_reserved_ip']
    assert (folder / '10.42.1.2').read_text() == 'sandbox-1\neth0\n'
    assert (folder / 'last_reserved_ip').read_text() == '10.42.1.2'


def test_owners_maps_addresses_to_sandboxes(tmp_path):
    ipam = HostLocalIpam(str(tmp_path), SMALL)
    assert ipam.owners() == {}
    ipam.allocate('a')
    ipam.allocate('b')
    assert ipam.owners() == {'10.42.1.2': 'a', '10.42.1.3': 'b'}


def test_release_removes_the_file_and_tolerates_a_missing_one(tmp_path):
    ipam = HostLocalIpam(str(tmp_path), SMALL)
    address = ipam.allocate('a')
    ipam.release(address)
    ipam.release(address)
    assert ipam.owners() == {}


def test_an_address_a_pod_holds_is_skipped_even_without_its_file(tmp_path):
    """Regression: after `rm -rf ipam/*` the next pod got 10.42.0.2, which a
    running pod held."""
    ipam = HostLocalIpam(str(tmp_path), '10.42.0.0/24')
    assert ipam.allocate('new', taken={'10.42.0.2', '10.42.0.3'}) == '10.42.0.4'


def test_reserve_restores_a_lost_file(tmp_path):
    ipam = HostLocalIpam(str(tmp_path), '10.42.0.0/24')
    ipam.reserve('10.42.0.9', 'uid-a')
    assert ipam.owners() == {'10.42.0.9': 'uid-a'}


def test_release_by_owner_keeps_an_address_another_pod_now_holds(tmp_path):
    ipam = HostLocalIpam(str(tmp_path), '10.42.0.0/24')
    ipam.reserve('10.42.0.9', 'uid-b')
    ipam.release('10.42.0.9', 'uid-a')
    assert ipam.owners() == {'10.42.0.9': 'uid-b'}
    ipam.release('10.42.0.9', 'uid-b')
    assert ipam.owners() == {}


def test_a_batch_records_its_last_address_once_and_keeps_the_round_robin(tmp_path):
    ipam = HostLocalIpam(str(tmp_path), SMALL)
    last = Path(ipam.dir) / 'last_reserved_ip'
    assert [ipam.allocate(p, record=False) for p in 'ab'] == ['10.42.1.2', '10.42.1.3']
    assert not last.exists()
    ipam.record_last()
    assert last.read_text() == '10.42.1.3'
    ipam.release('10.42.1.2')
    # A new call (a new module run) reads the file: after .3, not the freed .2.
    assert HostLocalIpam(str(tmp_path), SMALL).allocate('c') == '10.42.1.4'
