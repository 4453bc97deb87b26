"""The modules load pyroute2 lean (issue "Scale": a module run paid 40-90 ms
for protocols it never speaks), and whatever else in the same process asks
pyroute2 for a name still gets the whole package."""
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils.podnet.core import reconcile

TESTS = Path(__file__).resolve().parent.parent


def python(code):
    """stdout of code run by a fresh interpreter, which finds module_utils as Ansible does."""
    done = subprocess.run([sys.executable, '-c', 'import podnet_testlib\n' + code],
                          capture_output=True, text=True, cwd=TESTS)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_rtnl_reads_links_without_the_protocols_it_does_not_use():
    loaded = python(
        "import sys\n"
        "from ansible.module_utils.podnet.kernel.netlink import links_by_name, rtnl\n"
        "with rtnl() as ipr:\n"
        "    assert 'lo' in links_by_name(ipr)\n"
        "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('pyroute2.')}\n"
        "             & {'ndb', 'ipdb', 'conntrack', 'ipset', 'nslink'}))")
    assert loaded == '[]'


def test_any_other_name_loads_the_whole_package():
    same = python(
        "from ansible.module_utils.podnet.kernel import netlink\n"
        "from pyroute2 import NDB, IPRoute, config\n"
        "import pyroute2\n"
        "print(IPRoute is netlink.IPRoute, NDB.__name__, pyroute2.__version__ != 'unknown')")
    assert same == 'True NDB True'


class Refused(Exception):
    """Stands for pyroute2's NetlinkError, which is no OSError."""


class Module:
    check_mode = False
    _diff = False

    def fail_json(self, **result):
        raise SystemExit(result)

    def exit_json(self, **result):
        raise AssertionError('exit_json after a refused change: %s' % result)


def test_a_netlink_refusal_fails_the_module_naming_its_object(monkeypatch):
    exceptions = type(sys)('pyroute2.netlink.exceptions')
    exceptions.NetlinkError = Refused
    monkeypatch.setitem(sys.modules, 'pyroute2.netlink.exceptions', exceptions)

    class Bridge(reconcile.Reconciler):
        subject = 'cni0'

        def read(self):
            return {}

        def plan(self, current):
            return [reconcile.Action('add', 'cni0', 'missing')]

        def do_add(self, action, current):
            raise Refused(17, 'File exists')

    with pytest.raises(SystemExit) as failed:
        reconcile.run_module(Module(), lambda module: Bridge())
    assert failed.value.code['msg'] == "cni0: the kernel refused a change: (17, 'File exists')"
