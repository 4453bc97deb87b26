"""Node pod CIDRs: lowest free subnet in inventory order, persisted ones
kept, explicit ones honoured or refused, stable when nodes are added."""
import pytest
from ansible.module_utils.podnet.plan import podcidr
from ansible.module_utils.podnet.core.errors import SpecError

CLUSTER = '10.42.0.0/16'


def refusal(*args, **kwargs):
    with pytest.raises(SpecError) as info:
        podcidr.allocate(*args, **kwargs)
    return info.value


def test_fresh_nodes_get_the_lowest_subnets_in_inventory_order():
    assert podcidr.allocate(CLUSTER, ['node3', 'node1', 'node2'], {}, {}) == {
        'node3': '10.42.0.0/24', 'node1': '10.42.1.0/24', 'node2': '10.42.2.0/24'}


def test_missing_existing_and_explicit_may_be_none():
    assert podcidr.allocate(CLUSTER, ['a'], None, None) == {'a': '10.42.0.0/24'}
    assert podcidr.allocate(CLUSTER, ['a'], {'a': None}, {'a': None}) == {'a': '10.42.0.0/24'}
    assert podcidr.allocate(CLUSTER, ['a'], {'a': ''}, {'a': ''}) == {'a': '10.42.0.0/24'}


def test_adding_a_node_in_the_middle_moves_no_other():
    first = podcidr.allocate(CLUSTER, ['node1', 'node3'], {}, {})
    assert first == {'node1': '10.42.0.0/24', 'node3': '10.42.1.0/24'}
    second = podcidr.allocate(CLUSTER, ['node1', 'node2', 'node3'], first, {})
    assert second == {'node1': '10.42.0.0/24', 'node2': '10.42.2.0/24',
                      'node3': '10.42.1.0/24'}
    persisted = dict(second, node2=None)
    assert podcidr.allocate(CLUSTER, ['node1', 'node2', 'node3'], persisted, {}) == second


def test_removed_node_frees_its_subnet_for_the_next_new_one():
    existing = {'node1': '10.42.0.0/24', 'gone': '10.42.1.0/24', 'node3': '10.42.2.0/24'}
    assert podcidr.allocate(CLUSTER, ['node1', 'node3', 'node4'], existing, {}) == {
        'node1': '10.42.0.0/24', 'node3': '10.42.2.0/24', 'node4': '10.42.1.0/24'}


def test_same_input_gives_same_result():
    args = (CLUSTER, ['a', 'b', 'c'], {'b': '10.42.7.0/24'}, {'c': '10.42.0.0/24'})
    assert podcidr.allocate(*args) == podcidr.allocate(*args) == {
        'a': '10.42.1.0/24', 'b': '10.42.7.0/24', 'c': '10.42.0.0/24'}


def test_explicit_wins_over_existing():
    existing = {'a': '10.42.0.0/24', 'b': '10.42.1.0/24'}
    assert podcidr.allocate(CLUSTER, ['a', 'b'], existing, {'a': '10.42.9.0/24'}) == {
        'a': '10.42.9.0/24', 'b': '10.42.1.0/24'}


def test_existing_that_collides_with_an_explicit_one_is_reallocated():
    existing = {'a': '10.42.0.0/24', 'b': '10.42.1.0/24'}
    assert podcidr.allocate(CLUSTER, ['a', 'b'], existing, {'b': '10.42.0.0/24'}) == {
        'a': '10.42.1.0/24', 'b': '10.42.0.0/24'}
    assert podcidr.allocate(CLUSTER, ['a', 'b'], {'a': '10.42.0.0/24'},
                            {'b': '10.42.0.0/24'}) == {'a': '10.42.1.0/24', 'b': '10.42.0.0/24'}


def test_two_nodes_claiming_one_existing_subnet_keep_it_for_the_first():
    existing = {'a': '10.42.5.0/24', 'b': '10.42.5.0/24'}
    assert podcidr.allocate(CLUSTER, ['b', 'a'], existing, {}) == {
        'b': '10.42.5.0/24', 'a': '10.42.0.0/24'}


@pytest.mark.parametrize('stale', ['10.43.0.0/24', '10.42.0.0/25', '10.42.0.0/23',
                                   '10.42.0.1/24', 'garbage', 42])
def test_stale_existing_subnet_is_reallocated_silently(stale):
    assert podcidr.allocate(CLUSTER, ['a', 'b'], {'a': '10.42.0.0/24', 'b': stale}, {}) == {
        'a': '10.42.0.0/24', 'b': '10.42.1.0/24'}


@pytest.mark.parametrize('explicit, words', [
    ({'b': '10.42.300.0/24'}, "'10.42.300.0/24' is not an IPv4 subnet"),
    ({'b': '10.42.1.1/24'}, 'has host bits set'),
    ({'b': '10.43.0.0/24'}, '10.43.0.0/24 is outside the cluster CIDR 10.42.0.0/16 '
                            '(podnet_cluster_cidr)'),
    ({'b': '10.42.0.0/25'}, '10.42.0.0/25 must be a /24'),
    ({'b': '10.42.0.0/23'}, '10.42.0.0/23 must be a /24'),
    ({'a': '10.42.3.0/24', 'b': '10.42.3.0/24'},
     '10.42.3.0/24 is already the podnet_pod_cidr of a'),
])
def test_invalid_explicit_cidr_is_refused_naming_node_and_field(explicit, words):
    error = refusal(CLUSTER, ['a', 'b'], {}, explicit)
    assert error.subject == 'b: podnet_pod_cidr'
    assert words in str(error)


def test_explicit_cidr_of_a_node_not_in_the_inventory_is_ignored():
    assert podcidr.allocate(CLUSTER, ['a'], {}, {'other': 'bad'}) == {'a': '10.42.0.0/24'}


def test_exhausted_cluster_cidr_is_refused():
    assert podcidr.allocate('10.42.0.0/23', ['a', 'b'], {}, {}) == {
        'a': '10.42.0.0/24', 'b': '10.42.1.0/24'}
    error = refusal('10.42.0.0/23', ['a', 'b', 'c'], {}, {})
    assert str(error) == ('podnet_cluster_cidr: 10.42.0.0/23 holds 2 /24 node subnets, too '
                          'few for 3 nodes (none left for c)')


def test_exhaustion_counts_explicit_and_existing_subnets():
    error = refusal('10.42.0.0/23', ['a', 'b', 'c'], {'a': '10.42.1.0/24'},
                    {'c': '10.42.0.0/24'})
    assert error.subject == 'podnet_cluster_cidr' and 'none left for b' in str(error)


def test_other_node_prefix_length():
    assert podcidr.allocate('10.42.0.0/24', ['a', 'b'], {'b': '10.42.0.0/24'}, {},
                            prefixlen=26) == {'a': '10.42.0.0/26', 'b': '10.42.0.64/26'}


@pytest.mark.parametrize('cluster, words', [
    ('10.42.0.0', 'smaller than one /24 node subnet'),
    ('10.42.0.0/25', '10.42.0.0/25 is smaller than one /24 node subnet'),
    ('10.42.0.1/16', 'has host bits set'),
    ('10.42.0.0/33', 'not an IPv4 subnet'),
    ('fd00::/64', 'not an IPv4 subnet'),
    ('', 'not an IPv4 subnet'),
    (None, 'None is not an IPv4 subnet'),
])
def test_malformed_cluster_cidr_is_refused(cluster, words):
    error = refusal(cluster, ['a'], {}, {})
    assert error.subject == 'podnet_cluster_cidr' and words in str(error)


@pytest.mark.parametrize('prefixlen', [0, 31, '24', True])
def test_bad_node_prefix_length_is_refused(prefixlen):
    error = refusal(CLUSTER, ['a'], {}, {}, prefixlen=prefixlen)
    assert error.subject == 'prefixlen'


def test_cluster_network_is_returned_parsed():
    assert str(podcidr.cluster_network(CLUSTER)) == CLUSTER


@pytest.mark.parametrize('cidr, gateway', [
    ('10.42.1.0/24', '10.42.1.1/24'),
    ('10.42.0.0/24', '10.42.0.1/24'),
    ('10.42.0.64/26', '10.42.0.65/26'),
    ('10.42.0.4/30', '10.42.0.5/30'),
])
def test_gateway_is_the_first_host_address(cidr, gateway):
    assert podcidr.gateway(cidr) == gateway


@pytest.mark.parametrize('cidr', ['10.42.1.1/24', 'nope', '10.42.0.0/31', '10.42.0.0/32'])
def test_gateway_refuses_a_bad_pod_cidr(cidr):
    with pytest.raises(SpecError) as info:
        podcidr.gateway(cidr)
    assert info.value.subject == 'podnet_pod_cidr'
