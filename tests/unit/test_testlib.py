"""The test plumbing: what touches the machine must leave it as it was, and
a root-only test may not skip when the run is root."""
from types import SimpleNamespace

import pytest
from podnet_testlib import kernel_at_least, skipped_as_root

SETTINGS = {'net.ipv4.neigh.default.gc_thresh3': 4096, 'net.ipv4.neigh.default.gc_thresh2': 2048}


def sysctl_tree(tmp_path, thresh3, thresh2):
    folder = tmp_path / 'net' / 'ipv4' / 'neigh' / 'default'
    folder.mkdir(parents=True)
    (folder / 'gc_thresh3').write_text('%d\n' % thresh3)
    (folder / 'gc_thresh2').write_text('%d\n' % thresh2)
    return folder


def test_a_setting_is_raised_while_the_test_runs_and_put_back_after(tmp_path):
    folder = sysctl_tree(tmp_path, 1024, 512)
    with kernel_at_least(SETTINGS, 'this test', root=str(tmp_path)):
        assert (folder / 'gc_thresh3').read_text() == '4096' and (folder / 'gc_thresh2').read_text() == '2048'
    assert (folder / 'gc_thresh3').read_text() == '1024' and (folder / 'gc_thresh2').read_text() == '512'


def test_a_setting_already_higher_is_left_alone_also_when_the_test_fails(tmp_path):
    folder = sysctl_tree(tmp_path, 16384, 512)
    with pytest.raises(RuntimeError), kernel_at_least(SETTINGS, 'this test', root=str(tmp_path)):
        raise RuntimeError('the test failed')
    assert (folder / 'gc_thresh3').read_text() == '16384\n' and (folder / 'gc_thresh2').read_text() == '512'


def test_a_setting_that_cannot_be_set_fails_the_test_naming_it(tmp_path):
    with pytest.raises(pytest.fail.Exception, match=r'^the crash tests: net.ipv4.neigh.default.gc_thresh3 must be '
                                                    r'at least 4096, and it could not be set .*: sysctl -w '):
        with kernel_at_least(SETTINGS, 'the crash tests', root=str(tmp_path)):
            pass


# -- a root-only test may not skip when the run is root (issue 22) --------------
def report(skipped, reason):
    return SimpleNamespace(skipped=skipped, longrepr=('test_x.py', 3, 'Skipped: ' + reason))


def test_a_skip_that_names_root_is_a_failure_as_root_only():
    needs = report(True, 'needs root and unshare to make a throwaway node')
    assert skipped_as_root(needs, euid=0) == 'Skipped: needs root and unshare to make a throwaway node'
    assert skipped_as_root(needs, euid=1000) is None


def test_other_skips_and_passes_are_left_alone():
    assert skipped_as_root(report(True, 'this kernel has no SCTP sockets'), euid=0) is None
    assert skipped_as_root(report(False, 'root'), euid=0) is None
