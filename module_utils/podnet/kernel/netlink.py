"""The one wrapper around pyroute2 that podnet's modules use.

`rtnl(netns)` opens an RTNL socket in a network namespace given as a path
(`/proc/<pid>/ns/net` for lab hosts, `/run/netns/<name>` for pod sandboxes):
the calling thread enters the namespace, opens the socket and returns, so
the socket stays bound there (rawnl.open_in; pyroute2's own netns= forks a
helper per socket, ten times slower). Ensure helpers follow the kernel's
errno, never message text: adding what exists and deleting what is gone are
both success. Pod sandboxes are wired and checked with rawnl, without
pyroute2, where its per-socket cost would count once per pod.
"""
import errno
import importlib
import importlib.util
import sys
import traceback
from contextlib import contextmanager

from ansible.module_utils.podnet.kernel import rawnl

AF_INET = 2  # socket.AF_INET, as netlink messages carry it
RT_TABLE_MAIN = 254  # the main routing table (rtnetlink.h)


def _lean_pyroute2():
    """Register pyroute2 without running its package __init__, which imports
    every protocol pyroute2 speaks (asyncio event loops, NDB, conntrack,
    nl80211...): half of its import time, paid on every module run that
    needs RTNL only. Submodules import as usual; the first other name asked
    of the package (`from pyroute2 import NDB`) runs the whole __init__."""
    if 'pyroute2' in sys.modules:
        return
    spec = importlib.util.find_spec('pyroute2')
    if spec is None:
        raise ImportError('No module named pyroute2')
    package = importlib.util.module_from_spec(spec)

    def whole_package(name):
        if importlib.util.find_spec('pyroute2.' + name) is not None:
            return importlib.import_module('pyroute2.' + name)
        del package.__getattr__
        try:
            spec.loader.exec_module(package)
        except BaseException:
            del sys.modules['pyroute2']  # the next import raises the real error again
            raise
        return getattr(package, name)

    package.__getattr__ = whole_package
    sys.modules['pyroute2'] = package


try:
    _lean_pyroute2()
    from pyroute2.iproute.linux import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
except ImportError:
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()
    NetlinkError = OSError


@contextmanager
def rtnl(netns=None):
    """An RTNL socket in this namespace, or in the one bound at path netns.
    A namespace that is gone raises FileNotFoundError."""
    ipr = IPRoute() if netns is None else rawnl.open_in(netns, IPRoute)
    try:
        yield ipr
    finally:
        ipr.close()


def link_index(ipr, ifname):
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def links_by_name(ipr):
    """{ifname: link message} of every link in the namespace."""
    return {link.get('IFLA_IFNAME'): link for link in ipr.get_links()}


def addresses_by_link(ipr):
    """{ifindex: {'a.b.c.d/len', ...}} of every IPv4 address."""
    found = {}
    for msg in ipr.get_addr(family=AF_INET):
        cidr = '%s/%d' % (msg.get('IFA_ADDRESS'), msg['prefixlen'])
        found.setdefault(msg['index'], set()).add(cidr)
    return found


def ensure_bridge(ipr, name, mtu):
    try:
        ipr.link('add', ifname=name, kind='bridge', mtu=mtu)
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise
    link = ipr.get_links(link_index(ipr, name))[0]
    kind = link.get(('IFLA_LINKINFO', 'IFLA_INFO_KIND'))
    if kind != 'bridge':
        raise NetlinkError(errno.EEXIST, '%s exists but is a %s, not a bridge' % (name, kind))
    return link['index']


def add_veth(ipr, name, peer_name, peer_pid, mtu, peer_mac=None):
    """A veth pair: `name` here, `peer_name` in the netns of process peer_pid
    (one queue each end: see rawnl.one_queue)."""
    queues = {'num_tx_queues': 1, 'num_rx_queues': 1}
    peer = dict(queues, ifname=peer_name, net_ns_pid=peer_pid, mtu=mtu)
    if peer_mac:
        peer['address'] = peer_mac
    ipr.link('add', ifname=name, kind='veth', mtu=mtu, peer=peer, **queues)
    return link_index(ipr, name)


def delete_link(ipr, name):
    """Remove a link; a link already gone is success."""
    index = link_index(ipr, name)
    if index is None:
        return False
    try:
        ipr.link('del', index=index)
    except NetlinkError as exc:
        if exc.code not in (errno.ENODEV, errno.ENOENT):
            raise
    return True


# Links podnet is deleting together, in the node's own namespace only: each
# RTM_DELLINK waits for an RCU grace period (about 18 ms here), a group
# deletion waits once for all of them.
TEARDOWN_GROUP = 0x706e6474


def delete_links(ipr, names):
    """Remove these links in one request; links already gone are success.
    Only they are in the group when it goes: a link an interrupted call
    left there is put back first, and on failure the links are put back."""
    links = links_by_name(ipr)
    doomed = [links[n]['index'] for n in names if n in links]
    strays = [link['index'] for link in links.values()
              if link.get_attr('IFLA_GROUP') == TEARDOWN_GROUP and link['index'] not in doomed]
    for index in strays:
        _tolerate_gone(ipr.link, 'set', index=index, group=0)
    if not doomed:
        return
    try:
        for index in doomed:
            _tolerate_gone(ipr.link, 'set', index=index, group=TEARDOWN_GROUP)
        _tolerate_gone(ipr.link, 'del', group=TEARDOWN_GROUP)
    except BaseException:
        for index in doomed:
            _tolerate_gone(ipr.link, 'set', index=index, group=0)
        raise


def _tolerate_gone(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except NetlinkError as exc:
        if exc.code not in (errno.ENODEV, errno.ENOENT):
            raise


def ensure_address(ipr, index, cidr):
    address, prefixlen = cidr.split('/')
    try:
        ipr.addr('add', index=index, address=address, prefixlen=int(prefixlen))
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise


def set_up(ipr, index, **attrs):
    ipr.link('set', index=index, state='up', **attrs)


def underlay_facts(underlay_ip=None):
    """The underlay of the calling node: the interface holding underlay_ip,
    or else the source of the default route. Raises LookupError if none."""
    with rtnl() as ipr:
        if underlay_ip is None:
            default = [r for r in ipr.get_routes(family=AF_INET, table=RT_TABLE_MAIN) if not r['dst_len']]
            if not default:
                raise LookupError('not given and the node has no default route')
            index = default[0].get('RTA_OIF')
            addrs = list(ipr.get_addr(family=AF_INET, index=index))
        else:
            addrs = [a for a in ipr.get_addr(family=AF_INET) if a.get('IFA_ADDRESS') == underlay_ip]
        if not addrs:
            raise LookupError('no interface of this node holds %s' % (underlay_ip or 'an address'))
        link = ipr.get_links(addrs[0]['index'])[0]
    return {'underlay_ip': addrs[0].get('IFA_ADDRESS'),
            'underlay_prefixlen': addrs[0]['prefixlen'],
            'underlay_ifname': link.get('IFLA_IFNAME'),
            'underlay_mtu': link.get('IFLA_MTU')}


def require_pyroute2(module):
    """fail_json the way ansible-core asks for a missing library."""
    if not HAS_PYROUTE2:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib('pyroute2'), exception=PYROUTE2_IMPORT_ERROR)
