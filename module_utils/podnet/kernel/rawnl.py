"""Raw rtnetlink, standard library only: the one fast netlink path for
pod sandboxes.

The spawner (which must fork from a small process, without pyroute2) wires
sandboxes with it, and the pods module reads every sandbox's eth0 with it:
a socket and three dumps per pod, where a pyroute2 IPRoute costs an event
loop. `in_netns(path)` opens the socket inside a network namespace (enter,
open, return: the socket stays bound there). The spawner process runs this
file's source after linux.py's, before its own.
"""
import collections
import os
import socket
import struct

try:
    from ansible.module_utils.podnet.kernel.linux import CLONE_NEWNET, check, libc
except ImportError:  # run as the spawner process: linux.py's source precedes this one
    pass

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 20, 22, 24, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x300, 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO = 1, 3, 4, 5, 10, 18
IFLA_NET_NS_FD, IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 28, 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN = 254
IFF_UP, NLA_F_NESTED = 0x1, 0x8000
IFLA_NUM_TX_QUEUES, IFLA_NUM_RX_QUEUES = 31, 32
IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA, IFLA_BRPORT_MODE = 4, 5, 4


def _attr(kind, payload):
    head = struct.pack('=HH', 4 + len(payload), kind)
    return head + payload + b'\0' * (-len(payload) % 4)


def one_queue():
    """Attributes for a veth end with one TX and one RX queue. Without them
    the kernel allocates a queue per CPU, then cuts the device down to one
    and waits for an expedited RCU grace period to do it: about a fifth of
    a pod's setup on 2 CPUs, more on more."""
    return _attr(IFLA_NUM_TX_QUEUES, struct.pack('=I', 1)) + _attr(IFLA_NUM_RX_QUEUES, struct.pack('=I', 1))


def _ifinfo(index=0, flags=0, change=0):
    return struct.pack('=BxHiII', socket.AF_UNSPEC, 0, index, flags, change)


def _attrs(data, offset):
    """{type: payload} of the attributes from offset on (nesting bits dropped)."""
    found = {}
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from('=HH', data, offset)
        if length < 4:
            break
        found[kind & 0x3fff] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def _u32(payload):
    return struct.unpack('=I', payload[:4])[0] if payload else None


class Rtnl:
    """A route netlink socket in the namespace where it was opened."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.seq = 0

    def close(self):
        self.sock.close()

    def _send(self, kind, body, flags):
        self.seq += 1
        self.sock.send(struct.pack('=IHHII', 16 + len(body), kind, NLM_F_REQUEST | flags,
                                   self.seq, 0) + body)

    def request(self, kind, body, flags=0):
        self._send(kind, body, NLM_F_ACK | flags)
        reply = self.sock.recv(65536)
        error = struct.unpack_from('=i', reply, 16)[0]
        if error:
            raise OSError(-error, 'netlink %d: %s' % (kind, os.strerror(-error)))

    def set_link(self, index=0, ifname=None, up=True, attrs=b''):
        if ifname:
            attrs += _attr(IFLA_IFNAME, ifname.encode() + b'\0')
        self.request(RTM_SETLINK, _ifinfo(index, IFF_UP if up else 0, IFF_UP) + attrs)

    def bridge_port(self, ifname, master):
        """Put ifname on the bridge of index master, in hairpin mode: a
        frame may leave by the port it came in by, which a pod reaching
        itself through its Service's DNAT needs (the CNI bridge plugin's
        hairpinMode, which flannel sets). Two requests: port options need
        the port on its bridge first, and only RTM_NEWLINK reads them."""
        self.set_link(ifname=ifname, attrs=_attr(IFLA_MASTER, struct.pack('=I', master)))
        port = _attr(IFLA_INFO_SLAVE_KIND, b'bridge\0') + _attr(
            IFLA_INFO_SLAVE_DATA | NLA_F_NESTED, _attr(IFLA_BRPORT_MODE, struct.pack('=B', 1)))
        self.request(RTM_NEWLINK, _ifinfo() + _attr(IFLA_IFNAME, ifname.encode() + b'\0')
                     + _attr(IFLA_LINKINFO | NLA_F_NESTED, port))

    def dump(self, kind, body):
        """The payloads of every message a dump request answers."""
        self._send(kind, body, NLM_F_DUMP)
        found = []
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, msg_type = struct.unpack_from('=IH', data, offset)
                if msg_type == NLMSG_DONE:
                    return found
                if msg_type == NLMSG_ERROR:
                    error = struct.unpack_from('=i', data, offset + 16)[0]
                    raise OSError(-error, 'netlink dump %d: %s' % (kind, os.strerror(-error)))
                found.append(data[offset + 16:offset + length])
                offset += (length + 3) & ~3

    def links(self):
        """{ifname: {index, flags, mtu, mac, link, master, kind}}."""
        return dict(_link(msg) for msg in self.dump(RTM_GETLINK, _ifinfo()))

    def link(self, ifname):
        """{index, flags, mtu, mac, link, master, kind} of the link named ifname,
        or None when there is none: one request, not a dump of every link."""
        self._send(RTM_GETLINK, _ifinfo() + _attr(IFLA_IFNAME, ifname.encode() + b'\0'), 0)
        reply = self.sock.recv(65536)
        if struct.unpack_from('=H', reply, 4)[0] == NLMSG_ERROR:
            error = struct.unpack_from('=i', reply, 16)[0]
            if error == -19:  # ENODEV
                return None
            raise OSError(-error, 'netlink get %s: %s' % (ifname, os.strerror(-error)))
        return _link(reply[16:])[1]

    def addresses(self):
        """[(ifindex, 'a.b.c.d/len')] of every IPv4 address."""
        found = []
        for msg in self.dump(RTM_GETADDR, struct.pack('=BBBBI', socket.AF_INET, 0, 0, 0, 0)):
            _, prefixlen, _, _, index = struct.unpack_from('=BBBBI', msg)
            attrs = _attrs(msg, 8)
            address = attrs.get(IFA_ADDRESS) or attrs.get(IFA_LOCAL)
            found.append((index, '%s/%d' % (socket.inet_ntoa(address), prefixlen)))
        return found

    def default_routes(self):
        """[(oif, gateway or None)] of the IPv4 default routes of the main table."""
        found = []
        for msg in self.dump(RTM_GETROUTE, struct.pack('=BBBBBBBBI', socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)):
            _, dst_len, _, _, table = struct.unpack_from('=BBBBB', msg)
            attrs = _attrs(msg, 12)
            table = _u32(attrs.get(RTA_TABLE)) or table
            if dst_len == 0 and table == RT_TABLE_MAIN:
                gateway = attrs.get(RTA_GATEWAY)
                found.append((_u32(attrs.get(RTA_OIF)), gateway and socket.inet_ntoa(gateway)))
        return found


# A veth pair as made from inside a namespace: `inside` there (with `index`,
# when the caller knows the one a fresh namespace gives, else 0), `outside`
# moved to another namespace; both with mtu, `inside` with mac.
VethPair = collections.namedtuple('VethPair', 'inside outside mtu mac index')


def add_veth_inside(nl, pair, home_net):
    """From a socket inside a namespace: the VethPair, its outside end moved
    to the namespace of the fd home_net, each end with one queue. EEXIST
    when either name is taken."""
    link_attrs = _attr(IFLA_MTU, struct.pack('=I', pair.mtu)) + one_queue()
    other = (_ifinfo() + _attr(IFLA_IFNAME, pair.outside.encode() + b'\0') + link_attrs
             + _attr(IFLA_NET_NS_FD, struct.pack('=I', home_net)))
    info = (_attr(IFLA_INFO_KIND, b'veth')
            + _attr(IFLA_INFO_DATA | NLA_F_NESTED, _attr(VETH_INFO_PEER | NLA_F_NESTED, other)))
    nl.request(RTM_NEWLINK, _ifinfo(pair.index) + _attr(IFLA_IFNAME, pair.inside.encode() + b'\0') + link_attrs
               + _attr(IFLA_ADDRESS, bytes.fromhex(pair.mac.replace(':', '')))
               + _attr(IFLA_LINKINFO | NLA_F_NESTED, info), NLM_F_CREATE | NLM_F_EXCL)


def add_address(nl, index, cidr, broadcast):
    """'a.b.c.d/len' on the link of index, with its broadcast address."""
    address, prefixlen = cidr.split('/')
    raw = socket.inet_aton(address)
    nl.request(RTM_NEWADDR, struct.pack('=BBBBI', socket.AF_INET, int(prefixlen), 0, 0, index)
               + _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
               + _attr(IFA_BROADCAST, socket.inet_aton(broadcast)), NLM_F_CREATE | NLM_F_EXCL)


def add_default_route(nl, index, gateway):
    """The default route of the main table via gateway, out of the link of index."""
    add_route(nl, index, gateway, '0.0.0.0/0')


def add_route(nl, index, gateway, dst):
    """A route of the main table to dst ('a.b.c.d/len') via gateway, out of
    the link of index."""
    network, dst_len = dst.split('/')
    dst_attr = _attr(RTA_DST, socket.inet_aton(network)) if int(dst_len) else b''
    nl.request(RTM_NEWROUTE, struct.pack('=BBBBBBBBI', socket.AF_INET, int(dst_len), 0, 0, RT_TABLE_MAIN, 4, 0, 1, 0)
               + dst_attr + _attr(RTA_GATEWAY, socket.inet_aton(gateway))
               + _attr(RTA_OIF, struct.pack('=I', index)), NLM_F_CREATE | NLM_F_EXCL)


def delete_link(nl, ifname):
    """Remove the link named ifname; False when there is none (ENODEV)."""
    try:
        nl.request(RTM_DELLINK, _ifinfo() + _attr(IFLA_IFNAME, ifname.encode() + b'\0'))
    except OSError as exc:
        if exc.errno != 19:  # ENODEV
            raise
        return False
    return True


def _link(msg):
    _, _, index, flags, _ = struct.unpack_from('=BxHiII', msg)
    attrs = _attrs(msg, 16)
    mac = attrs.get(IFLA_ADDRESS, b'')
    kind = _attrs(attrs.get(IFLA_LINKINFO, b''), 0).get(IFLA_INFO_KIND, b'')
    return attrs.get(IFLA_IFNAME, b'').rstrip(b'\0').decode(), {
        'index': index, 'flags': flags, 'mtu': _u32(attrs.get(IFLA_MTU)),
        'mac': ':'.join('%02x' % b for b in mac), 'link': _u32(attrs.get(IFLA_LINK)),
        'master': _u32(attrs.get(IFLA_MASTER)), 'kind': kind.rstrip(b'\0').decode() or None}


def in_netns(path):
    """An Rtnl inside the network namespace bound at path."""
    return open_in(path, Rtnl)


def open_in(path, factory):
    """factory() called inside the network namespace bound at path, the
    caller back home after: a socket made there stays bound there."""
    own = os.open('/proc/self/ns/net', os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            _setns_net(target, path)
            try:
                return factory()
            finally:
                _setns_net(own, 'home')
        finally:
            os.close(target)
    finally:
        os.close(own)


def _setns_net(fd, what):
    check(libc.setns(fd, CLONE_NEWNET), 'setns ' + what)
