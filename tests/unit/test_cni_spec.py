"""The CNI spec's vocabulary: versions, the error document, results by version."""
import json

import pytest
from ansible.module_utils.podnet.cni import spec


def test_supported_versions_pass_and_others_get_code_1():
    for version in spec.SUPPORTED_VERSIONS:
        assert spec.check_version(version) == version
    with pytest.raises(spec.CniError) as err:
        spec.check_version('0.3.1')
    assert err.value.code == spec.INCOMPATIBLE_VERSION and '0.3.1' in err.value.details


def test_malformed_version_is_a_decode_error():
    with pytest.raises(spec.CniError) as err:
        spec.check_version('one')
    assert err.value.code == spec.DECODE_FAILURE


def test_status_and_gc_need_1_1():
    assert spec.has_verb('1.1.0', 'GC') and spec.has_verb('1.1.0', 'STATUS')
    assert not spec.has_verb('1.0.0', 'GC') and not spec.has_verb('0.4.0', 'STATUS')
    assert spec.has_verb('0.4.0', 'CHECK') and spec.has_verb('0.4.0', 'ADD')


def test_error_document_round_trips_and_names_the_plugin():
    err = spec.CniError(spec.INVALID_CONFIG, 'bad subnet', 'ipam.subnet: 10.0.0.0/33')
    doc = err.document('1.0.0')
    assert doc == {'cniVersion': '1.0.0', 'code': 7, 'msg': 'bad subnet', 'details': 'ipam.subnet: 10.0.0.0/33'}
    back = spec.CniError.from_document(json.dumps(doc), 'bridge')
    assert (back.code, back.msg, back.details) == (7, 'bridge: bad subnet', 'ipam.subnet: 10.0.0.0/33')


def test_garbage_on_stdout_is_a_decode_error_with_the_text():
    err = spec.CniError.from_document('panic: runtime error', 'ptp')
    assert err.code == spec.DECODE_FAILURE and 'ptp' in err.msg and 'panic' in err.details


def test_result_is_tagged_for_0_4_0_and_untagged_back():
    result = {'cniVersion': '1.1.0', 'ips': [{'address': '10.42.0.5/24', 'gateway': '10.42.0.1', 'interface': 1}]}
    old = spec.result_for(result, '0.4.0')
    assert old['cniVersion'] == '0.4.0' and old['ips'][0]['version'] == '4'
    assert spec.result_from(old)['ips'] == result['ips']
    assert 'version' not in spec.result_for(result, '1.0.0')['ips'][0]
