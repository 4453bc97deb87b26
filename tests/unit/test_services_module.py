"""podnet_services' plan (issue 23): the table is loaded when missing, when
what it would load changed, or when someone else changed it; not otherwise,
and not listed again while the namespace's nftables generation holds. The
kernel side is tests/integration/test_services_table.py and G8."""
import json

import pytest
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.services import record as services_record
from test_reset_plan import library

services = library('podnet_services')
ROUTE = ('10.43.0.0/16', '10.42.0.1')
ROUTE_TEXT = '10.43.0.0/16 dev cni0 src 10.42.0.1'


@pytest.fixture
def kernel(monkeypatch):
    """What the node holds: the table's listing digest, the generation,
    the route; and how often the table was listed."""
    state = {'listing': 'L1', 'generation': ['boot', 1, 7], 'route': ROUTE_TEXT, 'listed': 0}

    def listing(run, family, name):
        state['listed'] += 1
        return state['listing']
    monkeypatch.setattr(nft, 'listing_digest', listing)
    monkeypatch.setattr(nft, 'generation', lambda: state['generation'])
    monkeypatch.setattr(services, '_route_now', lambda: state['route'])
    return state


def node(tmp_path, text='table ip podnet-services {}\n', zone='{}\n', record=None):
    reconciler = services.NodeServices(None, str(tmp_path), text, ROUTE, zone, {})
    (tmp_path / 'dns').mkdir(exist_ok=True)
    (tmp_path / 'dns' / 'records.json').write_text(zone)
    if record is not None:
        (tmp_path / services_record.FILE).write_text(json.dumps(record))
    return reconciler


def loaded(tmp_path, text='table ip podnet-services {}\n', **changes):
    """A record as a load of text leaves it."""
    digest = services.NodeServices(None, str(tmp_path), text, ROUTE, '{}\n', {}).digest
    return dict({'digest': digest, 'listing': 'L1', 'generation': ['boot', 1, 7], 'text': text}, **changes)


def plan(reconciler):
    return [(a.verb, a.reason) for a in reconciler.plan(reconciler.read())]


def test_nothing_changes_and_nothing_is_listed_while_the_generation_holds(tmp_path, kernel):
    assert plan(node(tmp_path, record=loaded(tmp_path))) == []
    assert kernel['listed'] == 0


def test_a_new_generation_lists_the_table_and_finds_it_unchanged(tmp_path, kernel):
    kernel['generation'] = ['boot', 1, 8]  # another table changed
    assert plan(node(tmp_path, record=loaded(tmp_path))) == [] and kernel['listed'] == 1


def test_a_table_changed_by_someone_else_is_loaded_again(tmp_path, kernel):
    kernel['generation'], kernel['listing'] = ['boot', 1, 8], 'L2'
    assert plan(node(tmp_path, record=loaded(tmp_path))) == [
        ('set_table', 'changed outside podnet since podnet loaded it')]


def test_a_missing_table_or_record_is_loaded(tmp_path, kernel):
    kernel['generation'], kernel['listing'] = ['boot', 1, 8], None
    assert plan(node(tmp_path, record=loaded(tmp_path))) == [('set_table', 'missing')]
    kernel['listing'] = 'L1'
    (tmp_path / services_record.FILE).unlink()
    assert plan(node(tmp_path)) == [
        ('set_table', 'the record of what it was loaded from (%s/services.json) is missing' % tmp_path)]


def test_changed_services_or_endpoints_load_the_new_table(tmp_path, kernel):
    record = loaded(tmp_path, text='table ip podnet-services { old }\n')
    assert plan(node(tmp_path, record=record)) == [('set_table', 'the Services or their endpoints changed')]


def test_a_reboot_with_the_same_generation_number_lists_again(tmp_path, kernel):
    kernel['generation'], kernel['listing'] = ['another boot', 1, 7], None
    assert plan(node(tmp_path, record=loaded(tmp_path))) == [('set_table', 'missing')]


def test_a_missing_route_and_a_changed_zone_are_planned(tmp_path, kernel):
    kernel['route'] = None
    reconciler = node(tmp_path, record=loaded(tmp_path))
    (tmp_path / 'dns' / 'records.json').write_text('{"old": 1}\n')
    assert plan(reconciler) == [('set_route', 'missing'), ('write_zone', 'the Services or their endpoints changed')]


def test_state_absent_removes_what_is_there(tmp_path, kernel):
    node(tmp_path, record=loaded(tmp_path))
    absent = services.NodeServices(None, str(tmp_path), None)
    assert [a.verb for a in absent.plan(absent.read())] == ['delete_table', 'delete_route', 'forget_record',
                                                             'forget_zone']
