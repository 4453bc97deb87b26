"""netlink.delete_links (pod teardown): the links named go in one group
deletion, their veth peers with them, and nothing else does, not even a
link an interrupted call left in the group; in a throwaway network
namespace."""
import json
import subprocess
import sys

from podnet_testlib import ROOT

SCRIPT = '''
import json, sys
sys.path.insert(0, %r)
import podnet_testlib
from ansible.module_utils.podnet.kernel.netlink import TEARDOWN_GROUP, delete_links, links_by_name, rtnl
with rtnl() as ipr:
    for i in range(4):
        ipr.link('add', ifname='va%%d' %% i, kind='veth', peer='vb%%d' %% i)
    ipr.link('add', ifname='keep', kind='bridge')
    # As an interrupted teardown would leave it: in the group, yet kept.
    ipr.link('set', index=ipr.link_lookup(ifname='va3')[0], group=TEARDOWN_GROUP)
    delete_links(ipr, ['va0', 'va1', 'va2', 'gone'])
    delete_links(ipr, [])
    print(json.dumps(sorted(links_by_name(ipr))))
''' % str(ROOT / 'tests')


def test_named_links_and_their_peers_go_and_nothing_else():
    done = subprocess.run(['unshare', '--net', sys.executable, '-c', SCRIPT],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ['keep', 'lo', 'va3', 'vb3']
