"""An attachment in the kernel, with the raw netlink the pods' spawner uses
(kernel/rawnl.py, the same calls): the veth made from inside the
container's network namespace with its host end moved home, the address,
lo and the interface up, the routes; the host end on the node's bridge in
hairpin mode, as a pod's. Removing it removes the host end only: that
takes the pair with it, and an interface of the same name that another
plugin made in the container is never touched (a DEL follows every failed
ADD, even one that failed because CNI_IFNAME was taken).
"""
import collections
import ipaddress
import os

from ansible.module_utils.podnet.cni.spec import INTERFACE_EXISTS, PODNET_FAILURE, UNKNOWN_CONTAINER, CniError
from ansible.module_utils.podnet.kernel import rawnl

LOOPBACK = 1  # lo's index in every network namespace

# What ADD makes: names, the container end's MAC, the MTU of both ends, the
# address ('a.b.c.d/len'), and routes [(dst, gateway)] out of the interface.
Wiring = collections.namedtuple('Wiring', 'netns ifname veth mac mtu address routes bridge')


def enter(netns):
    """An Rtnl inside the namespace bound at netns (code 3 when there is none)."""
    if not os.path.exists(netns):
        raise CniError(UNKNOWN_CONTAINER, 'network namespace not found', 'CNI_NETNS %s does not exist' % netns)
    try:
        return rawnl.in_netns(netns)
    except OSError as exc:
        raise CniError(UNKNOWN_CONTAINER, 'not a network namespace', 'CNI_NETNS %s: %s' % (netns, exc.strerror))


def refuse_taken(inside, netns, ifname):
    """The spec's MUST: ADD fails when CNI_IFNAME exists in the container."""
    if inside.link(ifname) is not None:
        raise CniError(INTERFACE_EXISTS, 'interface already exists', 'CNI_IFNAME %s exists in %s' % (ifname, netns))


def attach(inside, home, wiring):
    """Make the attachment; on any failure remove what was made, then raise.
    inside, home: Rtnl in the container's namespace and the node's."""
    home_net = os.open('/proc/self/ns/net', os.O_RDONLY)
    try:
        rawnl.add_veth_inside(inside, rawnl.VethPair(wiring.ifname, wiring.veth, wiring.mtu, wiring.mac, 0), home_net)
    except OSError as exc:
        raise CniError(PODNET_FAILURE, 'cannot create the veth pair', '%s and %s: %s' % (
            wiring.ifname, wiring.veth, exc.strerror))
    finally:
        os.close(home_net)
    try:
        index = inside.link(wiring.ifname)['index']
        inside.set_link(LOOPBACK)
        inside.set_link(index)
        network = ipaddress.IPv4Interface(wiring.address).network
        rawnl.add_address(inside, index, wiring.address, str(network.broadcast_address))
        for dst, gateway in wiring.routes:
            rawnl.add_route(inside, index, gateway, dst)
        home.bridge_port(wiring.veth, wiring.bridge)
        return home.link(wiring.veth)['mac']
    except OSError as exc:
        detach(home, wiring.veth)
        raise CniError(PODNET_FAILURE, 'cannot wire the attachment', '%s in %s: %s' % (
            wiring.ifname, wiring.netns, exc))
    except BaseException:
        detach(home, wiring.veth)
        raise


def detach(home, veth):
    """Remove the host end (and with it the pair); True if it was there."""
    try:
        return rawnl.delete_link(home, veth)
    except OSError as exc:
        raise CniError(PODNET_FAILURE, 'cannot remove the veth', '%s: %s' % (veth, exc.strerror))


class Housekeeping:
    """What a call leaves to the node after its kernel work: removing a
    veth pair (DEL, GC) and telling the source guard of a new attachment
    (ADD). Here both happen at once, before the answer (a call served in
    its own process); the resident server's (server.py) cuts a pair off at
    once and does the slow rest after the answer."""

    def remove(self, home, veth):
        detach(home, veth)

    def settle(self, veth):
        """Wait until a housekeeping of veth under way is done (none here)."""

    def guard(self, refresh):
        """Run refresh(), which renders the node's source guard again."""
        refresh()


def inspect(inside, ifname):
    """{mac, mtu, up, addresses, gateways} of ifname in a namespace, or None:
    what CHECK holds against prevResult."""
    link = inside.link(ifname)
    if link is None:
        return None
    index = link['index']
    return {'mac': link['mac'], 'mtu': link['mtu'], 'up': bool(link['flags'] & rawnl.IFF_UP),
            'addresses': sorted(a for i, a in inside.addresses() if i == index),
            'gateways': sorted(g for oif, g in inside.default_routes() if oif == index and g)}
