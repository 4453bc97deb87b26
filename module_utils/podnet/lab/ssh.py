"""The lab's own SSH identity: a client key, one host key shared by all lab
nodes, the sshd configuration, and a known_hosts entry under the alias
`podnet-lab` (inventories set HostKeyAlias to it). Kept in a git-ignored
folder of the project, never in root's ~/.ssh or /etc/ssh."""
import os

HOST_KEY_ALIAS = 'podnet-lab'
CLIENT_KEY = 'id_ed25519'
HOST_KEY = 'ssh_host_ed25519_key'
SSHD = '/usr/sbin/sshd'

SSHD_CONFIG = """\
# podnet lab nodes: key-only root login on the management address.
HostKey {dir}/{host_key}
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The project may live under a world-writable folder such as /tmp, which
# StrictModes rejects; the key files themselves are 0600 in a 0700 folder.
StrictModes no
UseDNS no
PrintMotd no
PidFile /run/sshd.pid
MaxSessions 64
MaxStartups 64:30:128
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
# Root on a node has a home of its own, as on a VM. The controller's /root
# is shared through the filesystem, and Debian's bash sources ~/.bashrc when
# sshd runs it: every command on a node ran the controller user's shell
# set-up (pyenv init: 170 processes, 90 ms a command).
SetEnv HOME={home}
"""
# Made by the node's init (podnet-lab-init) on its private /run.
NODE_HOME = '/run/podnet/home'


def _write_if_changed(path, text, mode=0o600):
    try:
        with open(path) as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    fd = os.open(path + '.tmp', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(path + '.tmp', path)
    return True


def _read(path):
    with open(path) as f:
        return f.read()


def sshd_config(ssh_dir):
    return SSHD_CONFIG.format(dir=ssh_dir, host_key=HOST_KEY, home=NODE_HOME)


def plan_identity(ssh_dir):
    """What is wrong with the identity's files: missing ones, and an sshd
    configuration an older podnet wrote (for check mode and the plan)."""
    wanted = [CLIENT_KEY, HOST_KEY, 'authorized_keys', 'known_hosts', 'sshd_config']
    problems = ['missing ' + f for f in wanted if not os.path.exists(os.path.join(ssh_dir, f))]
    config = os.path.join(ssh_dir, 'sshd_config')
    if os.path.exists(config) and _read(config) != sshd_config(ssh_dir):
        problems.append('sshd_config out of date')
    return problems


def ensure_identity(run, ssh_dir):
    """Create keys once; keep derived files in step. Returns the names of
    the files written."""
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    os.chmod(ssh_dir, 0o700)
    written = []
    for key in (CLIENT_KEY, HOST_KEY):
        path = os.path.join(ssh_dir, key)
        if not os.path.exists(path):
            rc, _, err = run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '',
                              '-C', 'podnet-lab', '-f', path])
            if rc != 0:
                raise OSError('ssh-keygen %s: %s' % (path, err))
            written.append(key)
    client_pub = _read(os.path.join(ssh_dir, CLIENT_KEY + '.pub'))
    host_pub = _read(os.path.join(ssh_dir, HOST_KEY + '.pub')).split()
    for name, text in (
            ('authorized_keys', client_pub),
            ('known_hosts', '%s %s %s\n' % (HOST_KEY_ALIAS, host_pub[0], host_pub[1])),
            ('sshd_config', sshd_config(ssh_dir))):
        if _write_if_changed(os.path.join(ssh_dir, name), text):
            written.append(name)
    return written


# A running node's sshd takes a new configuration or host key on SIGHUP (it
# re-executes itself); its oldest sshd is the listener, the others serve
# connections.
SSHD_RELOAD = ['pkill', '--signal', 'HUP', '--oldest', '--exact', 'sshd']
RELOAD_ON = {'sshd_config', HOST_KEY}


def sshd_argv(ssh_dir, listen_address):
    return [SSHD, '-f', os.path.join(ssh_dir, 'sshd_config'),
            '-o', 'ListenAddress=%s' % listen_address]
