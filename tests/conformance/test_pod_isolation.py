"""Pods are untrusted workloads (DESIGN, rules of the house): a container
keeps the container runtime's default capabilities, sees the node's system
folders read-only and neither the node's state nor the lab's keys, and a pod
that takes another pod's address gets nothing through (G3: the receiver
sees the sender's own pod IP, so no pod can pose as another), nor does one
that wraps a forged packet in VXLAN for a node to unwrap."""
import ipaddress
import re
import shlex

import pytest

# Docker's and containerd's default set, as a CapEff mask (bits of
# CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
# NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP).
RUNTIME_DEFAULT = 0xa80425fb
NETEXEC_UDP = 8081

SEND = r'''
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(float(sys.argv[4]))
for _ in range(3):
    s.sendto(b'clientip', (sys.argv[3], %d))
    try:
        print(s.recv(100).decode())
        break
    except OSError:
        pass
''' % NETEXEC_UDP

LISTEN = r'''
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
try:
    print('got', s.recvfrom(100))
except OSError:
    print('nothing')
'''


# A VXLAN datagram (VNI 1) around an Ethernet frame for a node's flannel.1
# MAC, holding an IPv4/UDP packet with a forged source: what a pod can send
# with a plain UDP socket, no capability needed.
INJECT = r'''
import socket, struct, sys
vtep_mac, source, victim, port = sys.argv[1:5]
payload = b'injected'
udp = struct.pack('!HHHH', 40000, int(port), 8 + len(payload), 0) + payload
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                 socket.inet_aton(source), socket.inet_aton(victim))
total = sum(struct.unpack('!10H', ip))
total = (total & 0xffff) + (total >> 16)
ip = ip[:10] + struct.pack('!H', ~((total & 0xffff) + (total >> 16)) & 0xffff) + ip[12:]
frame = bytes.fromhex(vtep_mac.replace(':', '')) + bytes.fromhex('02aabbccddee') + b'\x08\x00' + ip + udp
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for target in sys.argv[5:]:
    for _ in range(3):
        s.sendto(struct.pack('!II', 0x08000000, 1 << 8) + frame, (target, 8472))
'''
FORGED_SOURCE = '203.0.113.10'  # the outside host, which no pod is
VXLAN_LISTEN_PORT = 39999


def seed_containers(pods):
    return [(p, name) for p in pods.values() for name in p.containers
            if p.key.startswith('default/')]


def test_containers_keep_only_the_runtime_default_capabilities(pods):
    for pod, name in seed_containers(pods):
        status = pod.host.check_output('cat /proc/%s/status', str(pod.containers[name]))
        effective = [line for line in status.splitlines() if line.startswith('CapEff')][0].split()[1]
        assert int(effective, 16) == RUNTIME_DEFAULT, (pod, name, effective)


def test_containers_run_under_the_runtime_default_seccomp_profile(pods):
    """Issue 21: with no filter, `unshare -U -r` worked in a pod."""
    for pod, name in seed_containers(pods):
        status = pod.host.check_output('cat /proc/%s/status', str(pod.containers[name]))
        assert 'Seccomp:\t2' in status.splitlines(), (pod, name)


def test_each_container_has_a_cgroup_of_its_own_below_its_pod_s(pods):
    """kubelet's layout: kubepods[/burstable|/besteffort]/pod<uid>/<container>,
    in every hierarchy the node has (cgroup v1, v2 or both)."""
    below = re.compile(r'^\d+:[^:]*:/kubepods/(burstable/|besteffort/)?pod[0-9a-f-]+/(\S+)$')
    for pod, name in seed_containers(pods):
        lines = pod.host.check_output('cat /proc/%s/cgroup', str(pod.containers[name])).splitlines()
        leaves = {m.group(2) for m in map(below.match, lines) if m}
        assert leaves == {name}, (pod, name, lines)


def test_containers_see_neither_the_node_state_nor_the_lab_keys(pods, node_vars):
    # /run/podnet: a lab node's home for root and its module server's socket.
    secrets = ['/var/lib/podnet/pod-cidr', '/root/.ssh', '/run/podnet']
    secrets += sorted({v['ansible_ssh_private_key_file'] for v in node_vars.values()
                       if v.get('ansible_ssh_private_key_file')})
    for pod, name in seed_containers(pods):
        for path in secrets:
            assert pod.run_in(name, 'ls %s' % shlex.quote(path)).rc != 0, (pod, name, path)


def test_system_folders_are_read_only_in_containers(pods):
    for pod, name in seed_containers(pods):
        assert pod.run_in(name, 'touch /usr/podnet-probe').rc != 0, (pod, name)
        assert pod.run_in(name, 'touch /tmp/podnet-probe').rc == 0, (pod, name)


def clientip(sender, receiver, source_ip, port, wait=2):
    """What receiver's netexec says our address is, asked over UDP from
    source_ip:port inside sender's network namespace (three tries)."""
    return sender.run('python3 -c %s %s %s %s %s' % (shlex.quote(SEND), source_ip, port, receiver.ip, wait))


@pytest.mark.parametrize('where', ['same node', 'across nodes'])
def test_a_pod_that_takes_another_pods_address_gets_nothing_through(pods, servers, where):
    """Even with NET_ADMIN (here: root in the pod's namespace) a pod that
    adds another pod's address and sends from it is dropped at its own
    port, before routing and NetworkPolicy; a reply never reaches the pod
    it posed as."""
    trio = _trio(pods, servers, same_node=where == 'same node')
    if trio is None:
        pytest.skip('the cluster has no sender, victim and netexec server %s' % where)
    sender, victim, server = trio
    port = 40000 + int(sender.ip.split('.')[-1])
    assert sender.ip in clientip(sender, server, sender.ip, port).stdout  # the path works
    listen = 'timeout 5 python3 -c %s %d 3 </dev/null >/tmp/podnet-spoof-%d 2>&1 &' % (
        shlex.quote(LISTEN), port, port)
    victim.run("sh -c %s" % shlex.quote(listen))
    try:
        sender.run('ip addr add %s/32 dev eth0' % victim.ip)
        clientip(sender, server, victim.ip, port, wait=0.3)
    finally:
        sender.run('ip addr del %s/32 dev eth0' % victim.ip)
    heard = victim.host.check_output('sh -c "sleep 3; cat /tmp/podnet-spoof-%d; rm -f /tmp/podnet-spoof-%d"'
                                      % (port, port))
    assert heard.strip() == 'nothing', (sender, victim, server, heard)


def _trio(pods, servers, same_node):
    for server in servers:
        for sender in pods.values():
            if sender is server or (sender.node == server.node) != same_node:
                continue
            victims = [p for p in pods.values() if p not in (sender, server)]
            if victims:
                return sender, victims[0], server
    return None


def test_a_pod_cannot_inject_vxlan_into_any_node(pods, nodes, underlay, pod_cidrs):
    """Regression (issue 21): a pod sent a VXLAN datagram to a node's port
    8472 (its underlay address, its cni0 or flannel.1 address; its own node's
    too) and the node unwrapped it, delivering the inner packet with any
    source, past the source guard, isolation and NetworkPolicy. Each node
    with a pod gets such a packet for that pod from a pod on another node,
    on every address above, and from a pod of its own; nothing arrives."""
    vteps = {n: h.run('cat /sys/class/net/flannel.1/address').stdout.strip() for n, h in nodes.items()}
    if not any(vteps.values()):
        pytest.skip('no node has flannel.1 (host-gw): there is no VXLAN port to inject into')
    by_node = {}
    for pod in pods.values():
        by_node.setdefault(pod.node, []).append(pod)
    heard = {}
    for node, victims in sorted(by_node.items()):
        senders = [p for p in pods.values() if p.node != node][:1] + victims[1:2]
        if not vteps.get(node) or not senders:
            continue
        victim = victims[0]
        _listen(victim, VXLAN_LISTEN_PORT, 6)
        heard[victim.key] = victim
        for sender in senders:
            targets = _node_addresses(node, underlay, pod_cidrs, own=sender.node == node)
            sender.run('python3 -c %s %s %s %s %d %s' % (
                shlex.quote(INJECT), vteps[node], FORGED_SOURCE, victim.ip, VXLAN_LISTEN_PORT,
                ' '.join(targets)))
    assert heard, 'no node has a pod to inject into and a pod to inject from'
    got = {key: _heard(victim, VXLAN_LISTEN_PORT) for key, victim in heard.items()}
    assert {k: v for k, v in got.items() if v != 'nothing'} == {}


def _node_addresses(node, underlay, pod_cidrs, own):
    """A node's underlay address, its cni0 address and (seen from another
    node, where a route leads to it) its flannel.1 address."""
    net = ipaddress.IPv4Network(pod_cidrs[node])
    found = [underlay[node], str(net.network_address + 1)]
    return found if own else found + [str(net.network_address)]


def _listen(pod, port, seconds):
    """Start a UDP listener in the pod for seconds; _heard() tells what came."""
    listen = 'timeout %d python3 -c %s %d %d </dev/null >%s 2>&1 &' % (
        seconds + 1, shlex.quote(LISTEN), port, seconds, _heard_file(pod, port))
    pod.run('sh -c %s' % shlex.quote(listen))


def _heard(pod, port):
    """What the listener printed ('nothing', or 'got' and the datagram),
    once it has (it ends at its first datagram or its timeout)."""
    path = _heard_file(pod, port)
    return pod.host.check_output(
        "sh -c 'for i in $(seq 60); do [ -s %s ] && break; sleep 0.2; done; cat %s; rm -f %s'"
        % (path, path, path)).strip()


def _heard_file(pod, port):
    return '/tmp/podnet-listen-%s-%d' % (pod.netns, port)
