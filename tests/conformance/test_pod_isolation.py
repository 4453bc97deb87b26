"""Pods are untrusted workloads (DESIGN, rules of the house): a container
keeps the container runtime's default capabilities, sees the node's system
folders read-only and neither the node's state nor the lab's keys, and a pod
that takes another pod's address gets nothing through (G3: the receiver
sees the sender's own pod IP, so no pod can pose as another)."""
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


def seed_containers(pods):
    return [(p, name) for p in pods.values() for name in p.containers
            if p.key.startswith('default/')]


def test_containers_keep_only_the_runtime_default_capabilities(pods):
    for pod, name in seed_containers(pods):
        status = pod.host.check_output('cat /proc/%s/status', str(pod.containers[name]))
        effective = [l for l in status.splitlines() if l.startswith('CapEff')][0].split()[1]
        assert int(effective, 16) == RUNTIME_DEFAULT, (pod, name, effective)


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
