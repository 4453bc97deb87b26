"""A pod's init containers, run when its sandbox is made: one after
another, each to completion (exit 0), before any of its containers starts,
as the kubelet runs them. Never again while the sandbox stands: a container
that restarts does not rerun them (the pod's record keeps what they did).

The policy lives here, pure; the runtime (runtime.py) runs each try through
the spawner, which alone can read an exit code (it is the parent). One that
fails is tried again after a short back-off unless the pod's restartPolicy
is Never, under which the pod ends Failed and stays so (records.py). The
kubelet would go on trying for ever, with a back-off up to five minutes; a
converge must end, so it stops after TRIES, removes the pod and fails.
One still running at its timeout is killed and not tried again: it would
most likely hang again, and the run has waited long enough for it.
"""
import os
import time

from ansible.module_utils.podnet.pods.sandbox import SandboxError
from ansible.module_utils.podnet.pods.spawner import TIMED_OUT

TRIES = 3  # of an init container that fails, unless restartPolicy is Never
BACKOFF = 1.0  # seconds before the second try, doubled before each next one
DEFAULT_TIMEOUT = 60  # seconds one try may run (podnet_pods' init_timeout)


class InitFailed(SandboxError):
    """An init container did not complete; `container` names it."""

    def __init__(self, subject, message, container):
        super().__init__(subject, message)
        self.container = container


def names(pod):
    """The pod's init containers' names, in the order they run."""
    return [c['name'] for c in pod.get('init_containers') or ()]


def tries(pod):
    return 1 if pod.get('restart_policy') == 'Never' else TRIES


def run_all(key, pod, run, timeout=DEFAULT_TIMEOUT, sleep=time.sleep):
    """{name: {exit_code, tries}} of the pod's init containers, each run by
    run(container) -> its exit code (spawner.TIMED_OUT past timeout), in
    order, each only once the one before completed. Raises InitFailed
    naming key and the first that did not complete."""
    done = {}
    for container in pod.get('init_containers') or ():
        done[container['name']] = _complete(key, pod, container, run, (timeout, sleep))
    return done


def _complete(key, pod, container, run, timing):
    timeout, sleep = timing
    allowed = tries(pod)
    for attempt in range(1, allowed + 1):
        code = run(container)
        if code == 0:
            return {'exit_code': 0, 'tries': attempt}
        if code == TIMED_OUT:
            break
        if attempt < allowed:
            sleep(BACKOFF * 2 ** (attempt - 1))
    raise InitFailed(key, _failure(container['name'], code, attempt, pod, timeout), container['name'])


def _failure(name, code, attempt, pod, timeout):
    if code == TIMED_OUT:
        said = 'init container %s still ran after %d s (init_timeout) and was killed' % (name, timeout)
    else:
        said = 'init container %s exited with code %d (%s, restartPolicy %s)' % (
            name, code, 'tried %d times' % attempt if attempt > 1 else 'tried once',
            pod.get('restart_policy', 'Always'))
    return said + ': none of its containers started' + ('' if ends_failed(pod) else ', and the pod was removed')


def ends_failed(pod):
    """True when an init container that does not complete leaves the pod
    Failed, as the kubelet does under restartPolicy Never, not removed."""
    return pod.get('restart_policy') == 'Never'


LAST_WORDS = 400  # characters of a failed init container's log the failure quotes


def last_words(log):
    """The end of a failed init container's log, for the failure message:
    the pod's folder, log and all, goes with the pod. The log is the pod's
    own writing: cut short, undecodable bytes replaced."""
    try:
        with open(log, 'rb') as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - LAST_WORDS))
            text = f.read().decode('utf-8', 'replace').strip()
    except OSError:
        return ''
    return '; its log ends: %s' % ' | '.join(line for line in text.splitlines() if line.strip()) if text else ''
