"""A node's CNI network for runtimes, as flannel's install-cni writes its
own: the network configuration (a conflist in the CNI configuration
folder), the plugin it names (a link in the CNI bin folder: podnet-cni finds
podnet's code from its real path) and podman's containers.conf, which
points podman's CNI backend at both. Files only: the
plugin wires a container when a runtime calls it.

A module, not Ansible's template and copy: on a lab node those cost about
a second each per run (a fresh Python each), four of them more than the
rest of site.yml together; podnet's modules run in the node's module server.

Shape: the Reconciler of core/reconcile.py: read() -> plan(current) -> do_<verb>(action, current).
"""
import hashlib
import ipaddress
import json
import os

from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.core.reconcile import Action, Reconciler
from ansible.module_utils.podnet.core.statefile import read_text, remove_any, write_atomic
from ansible.module_utils.podnet.kernel.linux import mount_points

CNI_VERSION = '1.0.0'  # podman 4.3's libcni goes no further
NATIVE = 'podnet-cni'  # podnet's own plugin, which uses podnet's IPAM
LINK = 'link'  # a file's "mode" when it is a symbolic link; its text is then '-> target'


def top_addresses(pod_cidr, count):
    """(first, last): the `count` highest addresses of pod_cidr below its
    broadcast, where a foreign plugin's host-local hands out addresses."""
    try:
        network = ipaddress.IPv4Network(pod_cidr)
    except ValueError as exc:
        raise SpecError('pod_cidr', str(exc)) from None
    if not 0 < count <= network.num_addresses - 3:  # network, gateway, broadcast
        raise SpecError('host_local_addresses', '%d addresses do not fit in %s' % (count, network))
    last = network.broadcast_address - 1
    return str(last - count + 1), str(last)


def conflist(spec):
    """The network configuration as a dict. podnet-cni takes addresses from
    podnet's IPAM in the state directory, on cni0; another plugin (Debian's
    ptp) gets host-local on the top addresses of the pod CIDR, which podnet's
    IPAM does not know (docs/cni.md, "podman on the lab")."""
    plugin = {'type': spec['type'], 'mtu': spec['mtu']}
    if spec['type'] == NATIVE:
        plugin['stateDir'] = spec['state_dir']
    else:
        first, last = top_addresses(spec['pod_cidr'], spec['host_local_addresses'])
        gateway = str(ipaddress.IPv4Network(spec['pod_cidr']).network_address + 1)
        plugin.update(ipMasq=False, ipam={
            'type': 'host-local', 'routes': [{'dst': '0.0.0.0/0'}],
            'ranges': [[{'subnet': spec['pod_cidr'], 'gateway': gateway, 'rangeStart': first, 'rangeEnd': last}]]})
    return {'cniVersion': CNI_VERSION, 'name': spec['network'], 'plugins': [plugin]}


def containers_conf(spec):
    """podman's containers.conf: the CNI backend on these folders, this
    network as the default (so podman never makes its own bridge)."""
    return '\n'.join([
        '# Written by podnet (roles/cni): podman runs the CNI backend on podnet\'s network.',
        '', '[containers]', 'cgroups = %s' % json.dumps(spec['podman_cgroups']),
        '', '[network]', 'network_backend = "cni"',
        'network_config_dir = %s' % json.dumps(spec['conf_dir']),
        'cni_plugin_dirs = %s' % json.dumps([spec['bin_dir']] + spec['system_bin_dirs']),
        'default_network = %s' % json.dumps(spec['network']),
        '', '[engine]', 'cgroup_manager = %s' % json.dumps(spec['podman_cgroup_manager']),
        'events_logger = "file"', ''])


class CniNetwork(Reconciler):
    """The files of the node's CNI network: {path: (text, mode)} wanted;
    state absent removes them and host-local's addresses of the network."""
    subject = 'podnet_cni_network'

    def __init__(self, spec):
        self.spec, self.lock_dir = spec, spec['state_dir']
        self.absent = spec['state'] == 'absent'
        self.conflist_path = os.path.join(spec['conf_dir'], spec['conflist'])
        self.plugin_path = os.path.join(spec['bin_dir'], NATIVE)
        self.addresses_dir = os.path.join(spec['ipam_dir'], spec['network'])

    def files(self):
        """{path: (text, mode)} of what the node should hold."""
        spec = self.spec
        found = {self.conflist_path: (json.dumps(conflist(spec), indent=2) + '\n', 0o644)}
        if spec['type'] == NATIVE:
            if not (spec['plugin_source'] and os.path.isfile(spec['plugin_source'])):
                raise SpecError('plugin_source', 'type %s needs the plugin, and there is none at %s'
                                % (NATIVE, spec['plugin_source']))
            found[self.plugin_path] = ('-> ' + spec['plugin_source'], LINK)
        if spec['podman_conf']:
            found[spec['podman_conf']] = (containers_conf(spec), 0o644)
        return found

    def _paths(self):
        own = [self.conflist_path, self.plugin_path, self.spec['podman_conf'], self.addresses_dir]
        return [p for p in own if p]

    def _folders(self):
        own = [self.spec['conf_dir'], self.spec['bin_dir']]
        return own + ([os.path.dirname(self.spec['podman_conf'])] if self.spec['podman_conf'] else [])

    def read(self):
        """{path: (text or None, mode or None)} of every file it may own;
        the folders that hold nothing else (for state absent), but mount
        points (a lab node's private folders)."""
        wanted = {} if self.absent else self.files()
        current = {}
        for path in self._paths():
            if os.path.islink(path):
                current[path] = ('-> ' + os.readlink(path), LINK)
            elif os.path.isdir(path):
                current[path] = (sorted(os.listdir(path)), None)
            elif os.path.lexists(path):
                current[path] = (read_text(path), os.stat(path).st_mode & 0o7777)
        own, mounted = set(self._paths()), mount_points()
        spare = [d for d in self._folders() if os.path.isdir(d) and d not in mounted
                 and not set(os.path.join(d, n) for n in os.listdir(d)) - own]
        return {'files': current, 'wanted': wanted, 'spare_folders': spare}

    def plan(self, current):
        have = current['files']
        if self.absent:
            return ([Action('remove', path, 'state absent') for path in self._paths() if path in have]
                    + [Action('remove_folder', d, 'nothing else in it') for d in current['spare_folders']])
        actions = []
        for path, (text, mode) in current['wanted'].items():
            if path not in have:
                actions.append(Action('write', path, 'missing'))
            elif have[path][0] != text:
                actions.append(Action('write', path, 'its content differs'))
            elif have[path][1] != mode:
                actions.append(Action('write', path, 'mode %s, want %s' % (_mode(have[path][1]), _mode(mode))))
        return actions

    def wanted(self, current):
        return {} if self.absent else current['wanted']

    def show(self, state):
        """Each file as its lines (the plugin as its digest), and its mode."""
        return _shown(state['files'])

    def show_wanted(self, current):
        return _shown(self.wanted(current))

    def result(self, current, actions):
        return {'conflist': self.conflist_path}

    def do_write(self, action, current):
        text, mode = current['wanted'][action.target]
        if mode == LINK:
            _link_atomic(text[len('-> '):], action.target)
        else:
            write_atomic(action.target, text, mode)

    def do_remove(self, action, _current):
        remove_any(action.target)

    def do_remove_folder(self, action, _current):
        os.rmdir(action.target)


def _mode(mode):
    return mode if mode in (None, LINK) else '%o' % mode


def _shown(files):
    """{path: {mode, content}}: text as its lines (a plugin copied by hand
    as its digest), a link as its target, a folder as its entries."""
    shown = {}
    for path, (text, mode) in files.items():
        if isinstance(text, str) and mode != LINK and os.path.basename(path) == NATIVE:
            text = 'sha256 %s' % hashlib.sha256(text.encode()).hexdigest()
        elif isinstance(text, str) and mode != LINK:
            text = text.splitlines()
        shown[path] = {'mode': _mode(mode), 'content': text}
    return shown


def _link_atomic(target, path):
    """path becomes a symbolic link to target in one rename."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = '%s.podnet-%d' % (path, os.getpid())
    remove_any(tmp)
    os.symlink(target, tmp)
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            remove_any(path)
        os.replace(tmp, path)
    except BaseException:
        remove_any(tmp)
        raise
