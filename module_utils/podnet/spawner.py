"""Spawner: the small process that forks pod sandboxes and containers.

Forking costs time in proportion to the forking process's memory; an Ansible
module with pyroute2 loaded forks five times slower than a bare interpreter.
So a module that starts pods runs this file once per call (standard library
only, `python -S`), sends it one JSON request per line and reads one JSON
reply per line. Each request is a double fork: the child enters or creates
namespaces, the grandchild becomes PID 1 of a new PID namespace and execs.

Requests:
  {"op": "sandbox", "netns": PATH, "hostname": NAME}
      new network, UTS, IPC and PID namespaces; the network namespace is
      bound to PATH (as `ip netns add` does); the grandchild is the pause
      process: /bin/cat as `/pause`, blocked forever on a pipe it holds both
      ends of.
  {"op": "container", "netns": PATH, "pause": PID, "argv": [...], "env": {...},
   "cwd": DIR, "log": FILE}
      joins the sandbox's network (PATH) and the pause process's UTS and IPC
      namespaces, gets new PID and mount namespaces, then execs argv.
Replies: {"pid": HOST_PID, "start": START_TIME} or {"error": TEXT}.
"""
import ctypes
import json
import os
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND = 0x2, 0x4, 0x8, 0x1000
MS_REC, MS_PRIVATE, MNT_DETACH = 0x4000, 0x40000, 2
NETNS_DIR = '/run/netns'
PAUSE_PROGRAM, PAUSE_ARGV0 = '/bin/cat', '/pause'

libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, '%s: %s' % (what, os.strerror(err)))


def _mount(source, target, fstype, flags):
    _check(libc.mount(source and source.encode(), target.encode(),
                      fstype and fstype.encode(), flags, None), 'mount ' + target)


def _setns(path, nstype):
    fd = os.open(path, os.O_RDONLY)
    try:
        _check(libc.setns(fd, nstype), 'setns ' + path)
    finally:
        os.close(fd)


def start_time(pid):
    """Start time of pid in clock ticks since boot: with the pid, it names
    one process for good (pids are reused, start times are not)."""
    with open('/proc/%d/stat' % pid) as f:
        return int(f.read().rsplit(')', 1)[1].split()[19])


def _enter_sandbox_new(req):
    fd = os.open(req['netns'], os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    _check(libc.unshare(CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID), 'unshare')
    name = req['hostname'].encode()
    _check(libc.sethostname(name, len(name)), 'sethostname')
    _mount('/proc/self/ns/net', req['netns'], None, MS_BIND)


def _exec_pause(req):
    os.setsid()
    hold_r, hold_w = os.pipe()
    os.dup2(hold_r, 0)
    os.set_inheritable(hold_w, True)
    null = os.open('/dev/null', os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.execv(PAUSE_PROGRAM, [PAUSE_ARGV0])


def _enter_container(req):
    _setns(req['netns'], CLONE_NEWNET)
    _setns('/proc/%d/ns/uts' % req['pause'], CLONE_NEWUTS)
    _setns('/proc/%d/ns/ipc' % req['pause'], CLONE_NEWIPC)
    _check(libc.unshare(CLONE_NEWPID | CLONE_NEWNS), 'unshare')


def _exec_container(req):
    os.setsid()
    _mount(None, '/', None, MS_REC | MS_PRIVATE)
    # The copied mount table holds every sandbox's /run/netns binding; a
    # container keeping them would keep deleted pods' namespaces alive.
    libc.umount2(NETNS_DIR.encode(), MNT_DETACH)
    _mount('proc', '/proc', 'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC)
    null = os.open('/dev/null', os.O_RDONLY)
    log = os.open(req['log'], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.chdir(req.get('cwd') or '/')
    os.execvpe(req['argv'][0], req['argv'], req['env'])


STEPS = {'sandbox': (_enter_sandbox_new, _exec_pause),
         'container': (_enter_container, _exec_container)}


def spawn(req):
    """Double fork; return the grandchild's host pid or raise with why not."""
    enter, execute = STEPS[req['op']]
    pid_r, pid_w = os.pipe()
    err_r, err_w = os.pipe()  # close-on-exec: EOF without data = exec done
    child = os.fork()
    if child == 0:
        _child(enter, execute, req, pid_w, err_w)
    os.close(pid_w)
    os.close(err_w)
    os.waitpid(child, 0)
    with os.fdopen(pid_r) as f:
        grandchild = f.read()
    with os.fdopen(err_r) as f:
        error = f.read()
    if error:
        raise RuntimeError(error.strip())
    return int(grandchild)


def _child(enter, execute, req, pid_w, err_w):
    try:
        enter(req)
        grandchild = os.fork()
        if grandchild == 0:
            try:
                execute(req)
            except BaseException as exc:  # report any failure, then die
                os.write(err_w, ('%s: %s' % (req.get('argv', [PAUSE_PROGRAM])[0], exc)).encode())
            os._exit(127)
        os.write(pid_w, str(grandchild).encode())
        os._exit(0)
    except BaseException as exc:
        os.write(err_w, str(exc).encode())
        os._exit(1)


def main():
    for line in sys.stdin:
        req = json.loads(line)
        try:
            pid = spawn(req)
            reply = {'pid': pid, 'start': start_time(pid)}
        except (OSError, RuntimeError, ValueError) as exc:
            reply = {'error': str(exc)}
        sys.stdout.write(json.dumps(reply) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
