from ansible.module_utils.podnet.kernel import sysctl


def test_plan_keeps_only_differing_values_compared_as_text():
    current = {'net.ipv4.ip_forward': '0', 'net.ipv4.conf.all.rp_filter': '0'}
    wanted = {'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 0}
    assert sysctl.plan(current, wanted) == {'net.ipv4.ip_forward': '1'}


def test_persisted_text_is_sorted_and_stable():
    text = sysctl.persist_text({'b.c': 1, 'a.b': 0})
    assert text.splitlines()[1:] == ['a.b = 0', 'b.c = 1']
