"""The lab provider: reconcile the running lab with its spec.

Shape: the Reconciler of core/reconcile.py (read, plan, do_<verb>). A lab host is
either healthy (its init alive and every link and address in place, sshd up
on nodes) or recreated whole, as a VM would be rebooted: partial repair of a
half-broken host would hide the fault that broke it.
"""
import ipaddress
import json
import os

from ansible.module_utils.podnet.core import names
from ansible.module_utils.podnet.core.errors import LabError
from ansible.module_utils.podnet.core.reconcile import Action, Reconciler
from ansible.module_utils.podnet.core.statefile import remove_tree, write_atomic
from ansible.module_utils.podnet.kernel import cgroups
from ansible.module_utils.podnet.kernel.netlink import AF_INET, RT_TABLE_MAIN, links_by_name, rtnl
from ansible.module_utils.podnet.lab import fabric, ssh
from ansible.module_utils.podnet.lab.host import (
    LabHost,
    init_program_of,
    processes_by_pid_namespace,
    running_hosts,
    wait_for_tcp,
)
from ansible.module_utils.podnet.lab.vms import LabVms

SSH_WAIT_SECONDS = 15


class LabPaths:
    """Where the lab keeps its files on the controller (a git-ignored folder).
    private_dirs: the paths (besides the state directory, state_target) each
    node has a folder of its own at, as a VM has its own disk: the CNI
    configuration and plugins, the runtime's state."""

    def __init__(self, lab_dir, lab_name, init_program, python, state_target, outside_server=(),
                 private_dirs=()):
        self.lab_dir = lab_dir
        self.ssh_dir = os.path.join(lab_dir, 'ssh')
        self.control_dir = os.path.join(lab_dir, 'cp')
        self.run_dir = os.path.join(lab_dir, lab_name)
        self.init_program = init_program
        self.python = python
        self.state_target = state_target
        self.outside_server = list(outside_server)
        self.private_dirs = list(private_dirs)

    def node_state(self, node):
        return os.path.join(self.run_dir, 'state', node)

    def node_binds(self, node):
        """[(folder in the run folder, path on the node)] of the node's
        private folders; each goes with the lab's run folder."""
        private = os.path.join(self.run_dir, 'private', node)
        return [(self.node_state(node), self.state_target)] + [
            (os.path.join(private, path.strip('/')), path) for path in self.private_dirs]


def controller_routes(lab_name):
    """[(description, network)] of the root namespace's routes, except the
    default route and this lab's own management bridge."""
    own = names.mgmt_bridge(lab_name)
    found = []
    with rtnl() as ipr:
        by_index = {link['index']: n for n, link in links_by_name(ipr).items()}
        for route in ipr.get_routes(family=AF_INET, table=RT_TABLE_MAIN):
            if not route['dst_len']:
                continue
            dev = by_index.get(route.get('RTA_OIF'), '?')
            if dev == own:
                continue
            net = ipaddress.IPv4Network('%s/%d' % (route.get('RTA_DST'), route['dst_len']),
                                        strict=False)
            found.append(('the controller route %s dev %s' % (net, dev), net))
    return found


class Lab(Reconciler):
    """The lab's hosts (fabric, outside, nodes), its management bridge,
    SSH identity and cgroups; state absent removes them all."""

    def __init__(self, spec, paths, run, cluster_cidr='10.42.0.0/16', state='present', check_mode=False):
        self.spec = spec
        self.paths = paths
        self.run = run
        self.absent, self.check_mode = state == 'absent', check_mode
        self.subject = 'podnet_lab %s' % spec.name
        self.hosts = [fabric.FABRIC, fabric.OUTSIDE] + [n.name for n in spec.nodes]
        self.vms = LabVms(spec, paths, cluster_cidr)
        self.hierarchies = cgroups.read_hierarchies()
        self._pids = {}  # host: init PID while apply() runs

    # -- reading -----------------------------------------------------------
    def read(self):
        """{'hosts': {name: {'pid', 'problems'}}, 'extra': {name: pid}, ...}"""
        pids = running_hosts(self.spec.name)
        self._refuse_foreign(pids)
        procs = processes_by_pid_namespace() if pids else {}
        with rtnl() as ipr:
            root_links = links_by_name(ipr)
        hosts = {h: self._host_state(h, pids, procs, root_links) for h in self.hosts}
        return {
            'hosts': hosts,
            'extra': {h: p for h, p in pids.items() if h not in hosts},
            'bridge': self._bridge_problems(root_links),
            'identity': (ssh.plan_identity(self.paths.ssh_dir)
                         + ([] if os.path.isdir(self.paths.control_dir) else ['missing cp/'])),
            'root_links': sorted(n for n in root_links
                                 if n.startswith(names.root_prefix(self.spec.name))),
            'cgroups': cgroups.lab_folders(self.spec.name, self.hierarchies),
        }

    def _refuse_foreign(self, pids):
        """A lab of the same name run from another project folder (another
        clone) shares bridge and addresses: never adopt or break it."""
        for host, pid in pids.items():
            program = init_program_of(pid)
            if program and os.path.realpath(program) != os.path.realpath(self.paths.init_program):
                raise LabError('podnet_lab.name', 'lab %r already runs from %s (host %s); '
                               'tear it down there first' % (self.spec.name, program, host))

    def _bridge_problems(self, root_links):
        if all(n.kind == 'qemu' for n in self.spec.nodes):
            return []  # VMs are managed over loopback: no bridge in the root namespace
        bridge = names.mgmt_bridge(self.spec.name)
        if bridge not in root_links:
            return ['no bridge %s' % bridge]
        return fabric.missing_addresses(None, {bridge: self.spec.mgmt.gateway_cidr})

    def _host_state(self, host, pids, procs, root_links):
        if self.vms.is_vm(host):
            return self.vms.state(host, pids.get(fabric.FABRIC))
        pid = pids.get(host)
        if pid is None:
            return {'pid': None, 'problems': ['not running']}
        problems = fabric.missing_addresses(
            LabHost(self.spec.name, host, pid).netns, fabric.wanted_addresses(self.spec, host))
        if host == fabric.OUTSIDE and self.paths.outside_server and \
                len(procs.get(os.readlink('/proc/%d/ns/pid' % pid), [])) < 2:
            problems.append('its server is not running')
        if host == fabric.OUTSIDE and fabric.FABRIC in pids:
            problems += fabric.missing_addresses(
                LabHost(self.spec.name, fabric.FABRIC, pids[fabric.FABRIC]).netns,
                {names.FABRIC_OUTSIDE_IFNAME: self.spec.outside.gateway_cidr})
        if host not in (fabric.FABRIC, fabric.OUTSIDE):
            port = names.mgmt_port(self.spec.name, host)
            if port not in root_links:
                problems.append('no management port %s' % port)
            if 'sshd' not in procs.get(os.readlink('/proc/%d/ns/pid' % pid), []):
                problems.append('sshd not running')
            mounted = LabHost(self.spec.name, host, pid).mount_points()
            problems += ['no private %s' % bind[1] for bind in self.paths.node_binds(host)
                         if bind[1] not in mounted]
            problems += ['no cgroup %s of its own' % e['dir']
                         for e in cgroups.node_cgroups(self.spec.name, host, self.hierarchies)
                         if not os.path.isdir(e['dir'])]
        return {'pid': pid, 'problems': problems}

    # -- planning ----------------------------------------------------------
    def plan(self, current):
        """[Action]: what apply() would do."""
        if self.absent:
            return self._plan_absent(current)
        actions = []
        if current['identity']:
            actions.append(Action('identity', self.paths.ssh_dir, ', '.join(current['identity'])))
        if current['bridge']:
            actions.append(Action('bridge', names.mgmt_bridge(self.spec.name), '; '.join(current['bridge'])))
        actions += [Action('destroy', h, 'not in the inventory') for h in current['extra']]
        fabric_new = bool(current['hosts'][fabric.FABRIC]['problems'])
        for host in self.hosts:
            problems = current['hosts'][host]['problems']
            if fabric_new and host != fabric.FABRIC and not problems:
                problems = ['its underlay goes with the fabric']
            if problems:
                actions.append(Action('create', host, '; '.join(problems)))
        return actions

    def _plan_absent(self, current):
        gone = 'lab_state=absent'
        actions = [Action('destroy', h, gone) for h, s in current['hosts'].items() if s['pid']]
        actions += [Action('destroy', h, gone) for h in current['extra']]
        if current['root_links']:
            actions.append(Action('delete_links', ' '.join(current['root_links']), gone))
        if current['cgroups']:
            actions.append(Action('remove_cgroups', ' '.join(current['cgroups']), gone))
        if os.path.exists(self.paths.run_dir):
            actions.append(Action('remove_files', self.paths.run_dir, gone))
        return actions

    # -- showing -----------------------------------------------------------
    def show(self, state):
        return summary(state)

    def show_wanted(self, current):
        return {} if self.absent else {h: 'running' for h in summary(current)}

    def result(self, current, actions):
        return dict(hosts=self.show(current) if self.check_mode else self.show_wanted(current))

    # -- applying ----------------------------------------------------------
    def apply(self, actions, current):
        self._pids = {h: s['pid'] for h, s in current['hosts'].items()}
        self._pids.update(current['extra'])
        super().apply(actions, current)
        if any(a.verb == 'create' for a in actions):
            self._wait_for_ssh()

    def do_identity(self, _action, current):
        if ssh.RELOAD_ON & set(ssh.ensure_identity(self.run, self.paths.ssh_dir)):
            self._reload_sshd(current)
        os.makedirs(self.paths.control_dir, mode=0o700, exist_ok=True)

    def do_bridge(self, _action, _current):
        fabric.ensure_mgmt_bridge(self.spec)

    def do_destroy(self, action, _current):
        if self.vms.is_vm(action.target):
            self.vms.destroy(action.target)
            return
        LabHost(self.spec.name, action.target, self._pids.pop(action.target, None)).destroy()
        cgroups.remove_lab_host(self.spec.name, action.target, self.hierarchies)

    def do_create(self, action, _current):
        self._pids[action.target] = self._recreate(action.target, self._pids)

    def do_delete_links(self, action, _current):
        fabric.delete_root_links(action.target.split())

    def do_remove_cgroups(self, _action, _current):
        cgroups.remove_lab(self.spec.name, self.hierarchies)

    def do_remove_files(self, _action, _current):
        self._remove_files()

    def _reload_sshd(self, current):
        """Healthy nodes' sshd take the new configuration (a node an older
        init started gets the home it names); the SSH masters close, so that
        the next command opens a session under it, once sshd listens again."""
        healthy = [n for n in self.spec.nodes if n.kind == 'netns'
                   and current['hosts'][n.name]['pid'] and not current['hosts'][n.name]['problems']]
        for node in healthy:
            host = LabHost(self.spec.name, node.name, current['hosts'][node.name]['pid'])
            host.enter(self.run, ['mkdir', '-p', '-m', '700', ssh.NODE_HOME])
            host.enter(self.run, ssh.SSHD_RELOAD)
        self._close_ssh_masters(['%s-' % n.mgmt_ip for n in healthy])
        if healthy:
            self._wait_for_ssh()

    def _recreate(self, host, pids):
        if self.vms.is_vm(host):
            return self.vms.create(host, pids.get(fabric.FABRIC))
        LabHost(self.spec.name, host, pids.get(host)).destroy()
        if host not in (fabric.FABRIC, fabric.OUTSIDE):
            fabric.delete_root_links([names.mgmt_port(self.spec.name, host)])
        lab_host = LabHost(self.spec.name, host)
        fabric_host = LabHost(self.spec.name, fabric.FABRIC, pids.get(fabric.FABRIC))
        if host == fabric.FABRIC:
            lab_host.create(self.run, self.paths.python, self.paths.init_program)
            fabric.plumb_fabric(self.spec, lab_host)
            lab_host.enter(self.run, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'])
        elif host == fabric.OUTSIDE:
            lab_host.create(self.run, self.paths.python, self.paths.init_program,
                            serve=self.paths.outside_server)
            fabric.plumb_outside(self.spec, fabric_host, lab_host)
        else:
            node = next(n for n in self.spec.nodes if n.name == host)
            own, listed = self._node_cgroups(host)
            lab_host.create(self.run, self.paths.python, self.paths.init_program,
                            self.paths.node_binds(host), cgroups=listed)
            fabric.plumb_node(self.spec, node, lab_host, fabric_host)
            # sshd, and so every module run and pod, in the node's own cgroup
            lab_host.enter(self.run, ssh.sshd_argv(self.paths.ssh_dir, node.mgmt_ip),
                           cgroups.process_folders(own))
        return lab_host.pid

    def _node_cgroups(self, host):
        """The node's cgroup folders, new (a crashed node's are removed), and
        the file that lists them for its init."""
        cgroups.remove_lab_host(self.spec.name, host, self.hierarchies)
        entries = cgroups.node_cgroups(self.spec.name, host, self.hierarchies)
        for entry in entries:
            cgroups.prepare_node(entry)
        listed = os.path.join(self.paths.run_dir, 'cgroups-%s.json' % host)
        os.makedirs(self.paths.run_dir, exist_ok=True)
        write_atomic(listed, json.dumps(entries))
        return entries, listed

    def _wait_for_ssh(self):
        silent = wait_for_tcp([str(n.mgmt_ip) for n in self.spec.nodes if n.kind == 'netns'], 22,
                              SSH_WAIT_SECONDS)
        if silent:
            raise LabError(', '.join(silent), 'sshd did not answer within %ds' % SSH_WAIT_SECONDS)
        self.vms.wait_for_ssh(n.name for n in self.vms.nodes())

    def _remove_files(self):
        """The lab's run folder and its SSH masters. Keys stay, and so does
        the (empty) state mountpoint: removing a directory detaches every
        mount on it in every namespace, so an rmdir here, however checked
        first, can race with another lab starting and strip its nodes of
        their private state, which they then share on the controller."""
        prefixes = ['%s-' % n.mgmt_ip for n in self.spec.nodes if n.kind == 'netns']
        self._close_ssh_masters(prefixes + self.vms.control_socket_prefixes())
        remove_tree(self.paths.run_dir)

    def _close_ssh_masters(self, prefixes):
        if not os.path.isdir(self.paths.control_dir):
            return
        for sock in os.listdir(self.paths.control_dir):
            if sock.startswith(tuple(prefixes)):
                self.run(['ssh', '-o', 'ControlPath=' + os.path.join(self.paths.control_dir, sock),
                          '-O', 'exit', sock.split('-')[0]])


def summary(current):
    """{host: 'running' | 'absent' | 'broken: why'} for diffs and RETURN."""
    out = {}
    for host, s in current['hosts'].items():
        if s['pid'] is None:
            out[host] = 'absent'
        else:
            out[host] = 'broken: ' + '; '.join(s['problems']) if s['problems'] else 'running'
    return out
