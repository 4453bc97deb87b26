"""Capabilities: the name table, and the set a container keeps under
containerd's rules for privileged, add and drop."""
import re
from pathlib import Path

import pytest
from ansible.module_utils.podnet.kernel import caps

DEFAULT = ['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD',
           'NET_BIND_SERVICE', 'NET_RAW', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT']
HEADER = Path('/usr/include/linux/capability.h')


def test_names_are_numbered_as_the_kernel_numbers_them():
    assert len(caps.NAMES) == 41 and caps.NUMBERS['CHOWN'] == 0
    assert caps.NUMBERS['NET_ADMIN'] == 12 and caps.NUMBERS['SYS_ADMIN'] == 21
    assert caps.NUMBERS['CHECKPOINT_RESTORE'] == 40


@pytest.mark.skipif(not HEADER.exists(), reason='no linux/capability.h on this machine')
def test_names_agree_with_linux_capability_h():
    defined = dict((name, int(number)) for name, number in re.findall(
        r'#define CAP_([A-Z_]+)\s+(\d+)\s*$', HEADER.read_text(), re.M))
    assert {k: v for k, v in defined.items() if v <= 40} == caps.NUMBERS


def test_runtime_default_set():
    assert caps.keeps() == DEFAULT
    assert 'NET_ADMIN' not in DEFAULT and 'SYS_ADMIN' not in DEFAULT


def test_privileged_keeps_every_capability_whatever_add_and_drop_say():
    assert caps.keeps(True, (), ('ALL',)) == sorted(caps.NAMES)


@pytest.mark.parametrize('add, drop, kept', [
    (('NET_ADMIN',), (), sorted(DEFAULT + ['NET_ADMIN'])),
    ((), ('NET_RAW', 'MKNOD'), [c for c in DEFAULT if c not in ('NET_RAW', 'MKNOD')]),
    (('NET_BIND_SERVICE',), ('ALL',), ['NET_BIND_SERVICE']),  # drop ALL then add works
    ((), ('ALL',), []),
    (('ALL',), ('SYS_ADMIN',), sorted(set(caps.NAMES) - {'SYS_ADMIN'})),
    (('ALL',), ('ALL',), []),
    (('NET_ADMIN',), ('NET_ADMIN',), DEFAULT),  # a name in both lists is dropped
])
def test_add_and_drop_follow_containerd(add, drop, kept):
    assert caps.keeps(False, add, drop) == kept


@pytest.mark.parametrize('text, name', [
    ('NET_ADMIN', 'NET_ADMIN'), ('CAP_NET_ADMIN', 'NET_ADMIN'), ('net_admin', 'NET_ADMIN'),
    ('cap_bpf', 'BPF'), ('ALL', 'ALL'), ('all', 'ALL'),
    ('CAP_ALL', 'ALL'), ('NET_ADMINS', None), ('CAP_', None), ('', None), (12, None)])
def test_canonical_names(text, name):
    assert caps.canonical(text) == name
