"""A running pod's probes, tried from its node once per run, as the kubelet
tries them (the plan says what each probe is: plan/probes.py).

httpGet, tcpSocket and grpc connect to the pod's own IP from the node;
nothing else is ever dialled (grpc calls grpc.health.v1.Health/Check over
cleartext HTTP/2, grpc_health.py). exec runs the command through the
spawner inside the container: its namespaces (its root too), its cgroups,
its capabilities, seccomp profile, no_new_privs and user, so a probe gives
the pod nothing it did not have. A probe the plan marks `skip` (what a
stand-in cannot answer) passes untried. A liveness probe is tried up to its
failureThreshold in a row; readiness and startup once, since one try per
run is all a run has. A pod is ready when all its containers run and their
startup and readiness probes pass.
"""
import http.client
import os
import socket
import ssl
import time

from ansible.module_utils.podnet.pods import grpc_health
from ansible.module_utils.podnet.pods.health import pod_cgroups
from ansible.module_utils.podnet.pods.records import KEY
from ansible.module_utils.podnet.pods.runtime import confinement, container_env
from ansible.module_utils.podnet.pods.sandbox import Process, SandboxError
from ansible.module_utils.podnet.pods.spawner import TIMED_OUT

USER_AGENT = 'kube-probe/1.31'  # what the kubelet sends; some servers answer probes by it
SETTLE_SECONDS = 5.0  # how long a run waits for the pods it started to pass their readiness probes
SETTLE_STEP = 0.2
EXITED, WAITING = 'exited', 'initialDelaySeconds'  # reasons no waiting within a run changes


def seconds_running(process):
    """Seconds since the process started (its start time is in clock ticks since boot)."""
    with open('/proc/uptime') as f:
        uptime = float(f.read().split()[0])
    return uptime - process['start'] / os.sysconf('SC_CLK_TCK')


class Prober:
    """hierarchies: the cgroup hierarchies; spawn: a SpawnerClient (exec probes)."""

    def __init__(self, hierarchies, spawn):
        self.hierarchies, self.spawn = hierarchies, spawn

    def judge(self, record, pod, dead, liveness=True):
        """(why the pod is not ready, {container: why its liveness probe failed})."""
        unready, unhealthy = [], {}
        for container in pod['containers']:
            name, probes = container['name'], container.get('probes') or {}
            if name in dead:
                unready.append('container %s %s' % (name, EXITED))
                continue
            age = seconds_running(record['containers'][name])
            failed = self._failing(probes.get('startup'), 'startup', record, pod, container, age)
            if failed:  # liveness and readiness wait for startup to pass
                unready.append(failed)
                continue
            failed = self._failing(probes.get('readiness'), 'readiness', record, pod, container, age)
            if failed:
                unready.append(failed)
            live = probes.get('liveness')
            if liveness and live and age >= live['initial_delay']:
                failed = self._failing(live, 'liveness', record, pod, container, age, live['failure_threshold'])
                if failed:
                    unhealthy[name] = failed
        return unready, unhealthy

    def settle(self, pods, dead_of):
        """{key: why not ready} of (record, pod) by key, each judged until it
        is ready, or no wait can make it so, or SETTLE_SECONDS pass."""
        deadline, verdicts = time.monotonic() + SETTLE_SECONDS, {}
        pending = dict(pods)
        while pending:
            for key, (record, pod) in sorted(pending.items()):
                verdicts[key] = self.judge(record, pod, dead_of(record), liveness=False)[0]
                if not verdicts[key] or any(EXITED in why or WAITING in why for why in verdicts[key]):
                    del pending[key]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(SETTLE_STEP)
        return {key: why for key, why in verdicts.items() if why}

    def _failing(self, probe, kind, record, pod, container, age, tries=1):
        """Why the probe fails, or None when it passes (or there is none)."""
        if not probe or probe.get('skip'):
            return None
        where = 'container %s: %s probe' % (container['name'], kind)
        if age < probe['initial_delay']:
            return '%s waits %ds (%s)' % (where, probe['initial_delay'], WAITING)
        why = None
        while tries:
            why = self._try(probe, record, pod, container)
            if why is None:
                return None
            tries -= 1
        return '%s failed: %s' % (where, why)

    def _try(self, probe, record, pod, container):
        if probe['handler'] == 'exec':
            return self._exec(probe, record, pod, container)
        if probe['handler'] == 'grpc':
            return grpc_health.check(record['ip'], probe['port'], probe.get('service') or '', probe['timeout'],
                                     USER_AGENT)
        try:
            if probe['handler'] == 'tcpSocket':
                socket.create_connection((record['ip'], probe['port']), timeout=probe['timeout']).close()
                return None
            return http_get(record['ip'], probe)
        except (OSError, http.client.HTTPException) as exc:
            return str(exc) or type(exc).__name__

    def _exec(self, probe, record, pod, container):
        name = container['name']
        if not Process.from_dict(record['containers'][name]).alive():
            return 'the container is not running'
        try:
            code = self.spawn.probe('%s container %s' % (record[KEY], name),
                                    target=record['containers'][name]['pid'], argv=probe['command'],
                                    env=container_env(pod, container), cwd=container.get('working_dir') or '/',
                                    cgroups=pod_cgroups(self.hierarchies, record).dirs(name),
                                    timeout=probe['timeout'], **confinement(container))
        except SandboxError as exc:
            return str(exc)
        if code == TIMED_OUT:
            return 'timed out after %ds' % probe['timeout']
        return None if code == 0 else 'exit code %d' % code


def http_get(ip, probe):
    """None if GET answers 2xx or 3xx, as the kubelet judges it, else why
    not. HTTPS is not verified (the kubelet does not verify it either)."""
    if probe['scheme'] == 'HTTPS':
        conn = http.client.HTTPSConnection(ip, probe['port'], timeout=probe['timeout'],
                                           context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(ip, probe['port'], timeout=probe['timeout'])
    headers = dict(probe.get('headers') or [])
    headers.setdefault('User-Agent', USER_AGENT)
    try:
        conn.request('GET', probe['path'], headers=headers)
        status = conn.getresponse().status
    finally:
        conn.close()
    return None if 200 <= status < 400 else 'HTTP status %d' % status
