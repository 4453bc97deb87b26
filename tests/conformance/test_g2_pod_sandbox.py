"""G2: containers of one pod share one network namespace (same IP and MAC,
localhost between them), each keeps its own PID and mount namespace, and a
pause process holds the sandbox."""
import pytest


@pytest.fixture(scope='module')
def multi(pods):
    found = [p for p in pods.values() if len(p.containers) > 1]
    if not found:
        pytest.fail('no pod with several containers (the seed multi-container-pod)')
    return found[0]


def ns_of(pod, pid, kind):
    return pod.host.check_output('readlink /proc/%s/ns/%s', str(pid), kind)


def test_every_container_sees_the_same_ip_and_mac(multi):
    seen = {c: multi.run_in(c, 'ip -o link show eth0').stdout.split('link/ether ')[1].split()[0]
            + ' ' + multi.run_in(c, 'ip -o -4 addr show eth0').stdout.split()[3]
            for c in multi.containers}
    assert len(set(seen.values())) == 1, seen
    assert next(iter(seen.values())).split()[1] == multi.ip + '/24'


def test_containers_talk_over_localhost(multi):
    assert set(multi.containers) >= {'curl', 'httpbin'}
    answer = multi.run_in('curl', 'curl -s -m 5 http://localhost:80/ip')
    assert answer.rc == 0 and '"origin": "127.0.0.1"' in answer.stdout, answer.stdout


def test_containers_share_net_uts_ipc_but_not_pid_or_mount(multi):
    pids = [multi.pause_pid] + list(multi.containers.values())
    for kind in ('net', 'uts', 'ipc'):
        assert len({ns_of(multi, p, kind) for p in pids}) == 1, kind
    for kind in ('pid', 'mnt'):
        assert len({ns_of(multi, p, kind) for p in multi.containers.values()}) == len(multi.containers), kind
    assert ns_of(multi, multi.pause_pid, 'pid') not in {ns_of(multi, p, 'pid') for p in pids[1:]}


def test_a_pause_process_holds_the_sandbox(pods, sample):
    for pod in sample.pods(pods):
        assert pod.host.check_output('tr "\\0" " " < /proc/%s/cmdline', str(pod.pause_pid)).strip() == '/pause'
        assert pod.host.check_output('ip netns identify %s', str(pod.pause_pid)) == pod.netns


def test_the_pod_hostname_is_the_pod_name(multi):
    for container in multi.containers:
        assert multi.run_in(container, 'hostname').stdout.strip() == multi.name
