"""Reachability probes tried from inside pods, as the netpol e2e tests do.

One Probe is one cell: from a source pod (by its sandbox `cni-<id>`) to a
target pod's IP, on one port and protocol. TCP and SCTP are allowed when a
connection is made within the timeout; UDP when any datagram answers
`hostname\\n` (agnhost serve-hostname --udp answers every datagram). Any
failure (timeout, refused, unreachable) is denied, as upstream counts it.

setns(2) moves only the calling thread, so worker threads enter the
sources' namespaces and the caller's thread never leaves the node's. The
probes are taken in source order, and a worker switches namespace only when
the source changes. Python standard library and ctypes only: a node needs
no pyroute2 for this.
"""
import ctypes
import ipaddress
import os
import socket
import threading
from dataclasses import dataclass

from ansible.module_utils.podnet.core.errors import PodnetError, SpecError
from ansible.module_utils.podnet.explain.reachability import PROTOCOLS, REFUSED
from ansible.module_utils.podnet.kernel.linux import CLONE_NEWNET, NETNS_DIR, libc

IPPROTO_SCTP = getattr(socket, 'IPPROTO_SCTP', 132)
UDP_REQUEST = b'hostname\n'
UDP_SENDS = 2  # a second datagram halfway through the timeout, should the first be lost


class ProbeError(PodnetError):
    """A pod's sandbox could not be opened or entered."""


@dataclass(frozen=True)
class Probe:
    source: str  # pod key, namespace/name
    netns: str  # the source's sandbox, cni-<id>
    target: str
    ip: str
    port: int
    protocol: str

    def result(self, allowed, reason):
        return {'from': self.source, 'to': self.target, 'port': self.port,
                'protocol': self.protocol, 'allowed': allowed, 'reason': reason}


def plan(sources, targets, ports, protocols, services=()):
    """[Probe] for every source x target x port x protocol, a pod to itself
    included, then from every source to each Service port (services:
    [{key, ip, port, protocol}], servicetargets.plan) on its own port and
    protocol; sorted by source; the input is checked first.
    sources: [{key, netns}], targets: [{key, ip}]."""
    for target in list(targets) + list(services):
        try:
            ipaddress.IPv4Address(target['ip'])
        except ValueError:
            raise SpecError('target %s' % target['key'], 'ip: %r is not an IPv4 address'
                            % (target['ip'],)) from None
    for port in list(ports) + [v['port'] for v in services]:
        if not 1 <= port <= 65535:
            raise SpecError('ports', '%d is not a port from 1 to 65535' % port)
    for protocol in list(protocols) + [v['protocol'] for v in services]:
        if protocol not in PROTOCOLS:
            raise SpecError('protocols', '%r must be one of %s' % (protocol, ', '.join(PROTOCOLS)))
    for source in sources:
        if '/' in source['netns'] or not source['netns'].startswith('cni-'):
            raise SpecError('source %s' % source['key'], 'netns: %r is not a pod sandbox '
                            'name cni-<id>' % source['netns'])
    pods = [Probe(s['key'], s['netns'], t['key'], t['ip'], port, protocol)
            for s in sources for t in sorted(targets, key=lambda t: t['key'])
            for port in sorted(set(ports)) for protocol in sorted(set(protocols))]
    to_services = [Probe(s['key'], s['netns'], v['key'], v['ip'], v['port'], v['protocol'])
                   for s in sources for v in sorted(services, key=lambda v: (v['key'], v['protocol']))]
    return sorted(pods + to_services, key=lambda probe: probe.source)  # stable: in order within a source


def sctp_unsupported():
    """None when this kernel opens SCTP sockets, else why not."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_SCTP).close()
    except OSError as exc:
        return 'unsupported: this kernel has no SCTP sockets (%s)' % _describe(exc)
    return None


def run(probes, timeout, concurrency):
    """The result of every probe, in the order given. SCTP probes are all
    `allowed: None` with the reason when the kernel has no SCTP."""
    results = [None] * len(probes)
    no_sctp = sctp_unsupported() if any(p.protocol == 'SCTP' for p in probes) else None
    todo = []
    for index, probe in enumerate(probes):
        if probe.protocol == 'SCTP' and no_sctp:
            results[index] = probe.result(None, no_sctp)
        else:
            todo.append(index)
    sandboxes = _open_sandboxes({probes[i].netns: probes[i].source for i in todo})
    try:
        pending = iter(todo)
        lock = threading.Lock()
        workers = [threading.Thread(target=_work, daemon=True,
                                    args=(probes, pending, lock, sandboxes, results, timeout))
                   for _ in range(max(1, min(concurrency, len(todo))))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        for fd in sandboxes.values():
            os.close(fd)
    return results


def _open_sandboxes(owners):
    """{netns: fd}, every sandbox opened before any probe; owners: {netns: pod}."""
    fds = {}
    try:
        for netns, pod in sorted(owners.items()):
            try:
                fds[netns] = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise ProbeError('pod %s' % pod, 'cannot open its sandbox %s: %s; converge '
                                 'the pods (site.yml) first' % (netns, exc.strerror)) from None
    except ProbeError:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def _work(probes, pending, lock, sandboxes, results, timeout):
    """A worker thread: take the next probe, enter its source's namespace
    unless already there, try it; until none is left. The thread ends in a
    pod's namespace, and dies there."""
    inside = None
    while True:
        with lock:
            index = next(pending, None)
        if index is None:
            return
        probe = probes[index]
        if probe.netns != inside:
            inside = None
            if libc.setns(sandboxes[probe.netns], CLONE_NEWNET) != 0:
                results[index] = probe.result(None, 'error: cannot enter %s: %s' % (
                    probe.netns, os.strerror(ctypes.get_errno())))
                continue
            inside = probe.netns
        results[index] = probe.result(*TRIES[probe.protocol](probe.ip, probe.port, timeout))


def _describe(exc):
    if isinstance(exc, socket.timeout):
        return 'timeout'
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    return (exc.strerror or str(exc)).lower()


def _connect(sock, ip, port, timeout):
    with sock:
        sock.settimeout(timeout)
        try:
            sock.connect((ip, port))
        except OSError as exc:
            return False, _describe(exc)
    return True, 'connected'


def try_tcp(ip, port, timeout):
    return _connect(socket.socket(socket.AF_INET, socket.SOCK_STREAM), ip, port, timeout)


def try_sctp(ip, port, timeout):
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_SCTP)
    except OSError as exc:
        return None, 'unsupported: no SCTP socket in this pod (%s)' % _describe(exc)
    return _connect(sock, ip, port, timeout)


def try_udp(ip, port, timeout):
    """Send `hostname\\n`, wait for any answer; resend once halfway."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout / UDP_SENDS)
        try:
            sock.connect((ip, port))
            for _ in range(UDP_SENDS):
                sock.send(UDP_REQUEST)
                try:
                    sock.recv(2048)
                    return True, 'answered'
                except socket.timeout:
                    continue
        except OSError as exc:
            return False, _describe(exc)
    return False, 'timeout'


TRIES = {'TCP': try_tcp, 'UDP': try_udp, 'SCTP': try_sctp}
