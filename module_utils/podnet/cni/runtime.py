"""The runtime's side of CNI (what libcni does for a container runtime),
following containernetworking/cni SPEC.md 1.1.0: load and check a network
configuration list, find each plugin in CNI_PATH, run ADD over the chain
(each plugin gets the one before's result as `prevResult`), DEL in reverse
with the cached result, CHECK, STATUS and GC, and keep each attachment's
result on disk as libcni keeps /var/lib/cni/results.

Written from the spec's text, not libcni's code: podnet drives chains of
plugins it did not write (Debian's bridge, ptp, host-local, portmap) to wire
pods, so that the conformance suite can grade them. Plugins are programs:
one process per plugin per verb, stdin the plugin's configuration, the CNI_*
environment, stdout a result or an error document (spec.py reads both).

An ADD that fails part-way is undone: DEL runs over the whole chain in
reverse, with what the plugins that did succeed returned, so nothing is
left (the spec asks the runtime to DEL after a failed ADD); the ADD's error
is raised, and a failure of that DEL is added to its details.
"""
import base64
import json
import os
import re
import subprocess

from ansible.module_utils.podnet.cni import spec
from ansible.module_utils.podnet.core.statefile import remove_any, write_atomic

# SPEC.md: a network name, and a container ID, are alphanumerics with _ . -
NAME = re.compile(r'^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$')
IFNAME_MAX = 15
CACHE_KIND = 'cniCacheV1'
EXEC_TIMEOUT = 60  # seconds one plugin may take; libcni has no limit, a converge must end
DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


def _invalid(field, why):
    return spec.CniError(spec.INVALID_CONFIG, 'invalid network configuration list', '%s: %s' % (field, why))


class NetworkList:
    """A network configuration list, checked: name, the cniVersion chosen,
    the plugins' own configurations, disableCheck and disableGC. source:
    what it was read from (a path), for messages."""

    def __init__(self, doc, source='conflist'):
        if not isinstance(doc, dict):
            raise _invalid(source, 'not a JSON object')
        self.source = source
        self.name = doc.get('name')
        if not isinstance(self.name, str) or not NAME.match(self.name):
            raise _invalid('name', 'want letters, digits, _ . - (got %r)' % (self.name,))
        self.version = _choose_version(doc)
        self.disable_check = _flag(doc, 'disableCheck')
        self.disable_gc = _flag(doc, 'disableGC')
        plugins = doc.get('plugins')
        if not isinstance(plugins, list) or not plugins:
            raise _invalid('plugins', 'want a non-empty list of plugin configurations')
        for index, plugin in enumerate(plugins):
            if not isinstance(plugin, dict) or not isinstance(plugin.get('type'), str) or not plugin['type']:
                raise _invalid('plugins[%d].type' % index, 'each plugin needs a type (its program name)')
            if '/' in plugin['type'] or plugin['type'] in ('.', '..'):
                raise _invalid('plugins[%d].type' % index, 'a program name, not a path: %r' % plugin['type'])
        self.plugins = plugins
        self.doc = doc

    @classmethod
    def load(cls, path):
        """The list in a .conflist file; unreadable or not JSON is error 7 or 6."""
        try:
            with open(path) as f:
                text = f.read()
        except OSError as exc:
            raise spec.CniError(spec.IO_FAILURE, 'cannot read network configuration list', '%s: %s' % (path, exc))
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text, source='conflist'):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise spec.CniError(spec.DECODE_FAILURE, 'network configuration list is not JSON', '%s: %s' % (source, exc))
        return cls(doc, source)

    def plugin_config(self, plugin, prev_result=None, runtime_config=None):
        """What one plugin reads on stdin: its own configuration with the
        list's name and cniVersion, the runtimeConfig of the capabilities it
        declares, and the previous result (as the list's version writes it)."""
        config = dict(plugin, name=self.name, cniVersion=self.version)
        wanted = {k: v for k, v in (runtime_config or {}).items() if plugin.get('capabilities', {}).get(k)}
        if wanted:
            config['runtimeConfig'] = wanted
        if prev_result is not None:
            config['prevResult'] = spec.result_for(prev_result, self.version)
        return config


def _flag(doc, field):
    value = doc.get(field, False)
    if isinstance(value, str) and value.lower() in ('true', 'false'):  # libcni accepts the string too
        return value.lower() == 'true'
    if not isinstance(value, bool):
        raise _invalid(field, 'want true or false (got %r)' % (value,))
    return value


def _choose_version(doc):
    """cniVersions (1.1.0): the newest podnet speaks; else cniVersion. A
    version podnet does not speak is error 1, as a plugin would answer."""
    versions = doc.get('cniVersions')
    if versions is not None:
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise _invalid('cniVersions', 'want a list of versions')
        spoken = [v for v in versions if v in spec.SUPPORTED_VERSIONS]
        if spoken:
            return max(spoken, key=spec.version_key)
        if 'cniVersion' not in doc:
            raise spec.CniError(spec.INCOMPATIBLE_VERSION, 'incompatible CNI versions',
                                'cniVersions %s, runtime supports %s' % (versions, list(spec.SUPPORTED_VERSIONS)))
    version = doc.get('cniVersion')
    if not isinstance(version, str):
        raise _invalid('cniVersion', 'want a version string such as %r' % spec.SPEC_VERSION)
    return spec.check_version(version)


class Attachment:
    """One container's interface on a network: the container ID, the path
    of its network namespace, the interface name inside, CNI_ARGS pairs and
    the capability arguments (runtimeConfig) the runtime passes."""

    def __init__(self, container_id, netns, ifname='eth0', args=(), capability_args=None):
        if not isinstance(container_id, str) or not NAME.match(container_id):
            raise spec.CniError(spec.INVALID_ENVIRONMENT, 'invalid container ID', repr(container_id))
        if not ifname or len(ifname.encode()) > IFNAME_MAX or ifname in ('.', '..') \
                or any(c in ifname for c in '/: \t\n'):
            raise spec.CniError(spec.INVALID_ENVIRONMENT, 'invalid interface name', repr(ifname))
        self.container_id, self.netns, self.ifname = container_id, netns, ifname
        self.args, self.capability_args = list(args), dict(capability_args or {})

    def __str__(self):
        return '%s/%s' % (self.container_id, self.ifname)


class Runtime:
    """cni_path: folders searched for plugin programs, in order;
    cache_dir: where results are kept (podnet's state dir, cni/);
    run: subprocess.run, or a stand-in."""

    def __init__(self, cni_path, cache_dir, run=subprocess.run):
        self.cni_path, self.cache_dir, self.run = list(cni_path), cache_dir, run

    # -- finding and running plugins ------------------------------------------------
    def find(self, plugin_type):
        """The program of a plugin type, first in CNI_PATH; missing is error 7
        naming the type and the folders searched (libcni: "failed to find
        plugin")."""
        for folder in self.cni_path:
            path = os.path.join(folder, plugin_type)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        raise spec.CniError(spec.INVALID_CONFIG, 'failed to find plugin %r' % plugin_type,
                            'CNI_PATH %s' % ':'.join(self.cni_path))

    def find_all(self, netlist):
        """Every plugin's program, before anything runs: a chain whose last
        plugin is missing must not start."""
        return [self.find(p['type']) for p in netlist.plugins]

    def exec_plugin(self, program, verb, config, attachment=None):
        """Run one plugin; its parsed stdout (None when empty), or its error."""
        env = {'CNI_COMMAND': verb, 'CNI_PATH': ':'.join(self.cni_path),
               'PATH': os.environ.get('PATH') or DEFAULT_PATH}
        if attachment is not None:
            env.update(CNI_CONTAINERID=attachment.container_id, CNI_NETNS=attachment.netns or '',
                       CNI_IFNAME=attachment.ifname, CNI_ARGS=';'.join('%s=%s' % kv for kv in attachment.args))
        name = os.path.basename(program)
        try:
            done = self.run([program], input=json.dumps(config).encode(), env=env, capture_output=True,
                            timeout=EXEC_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise spec.CniError(spec.TRY_AGAIN_LATER, '%s: %s did not answer in %d s' % (name, verb, EXEC_TIMEOUT))
        except OSError as exc:
            raise spec.CniError(spec.IO_FAILURE, '%s: cannot run it' % name, str(exc))
        out = done.stdout.decode(errors='replace')
        if done.returncode != 0:
            raise spec.CniError.from_document(out or done.stderr.decode(errors='replace'), name)
        if not out.strip():
            return None
        try:
            return json.loads(out)
        except ValueError:
            raise spec.CniError(spec.DECODE_FAILURE, '%s: %s printed no valid JSON' % (name, verb), out.strip()[:400])

    def version(self, plugin_type):
        """The versions a plugin says it supports (VERSION)."""
        answer = self.exec_plugin(self.find(plugin_type), 'VERSION', {'cniVersion': spec.SPEC_VERSION})
        if not isinstance(answer, dict) or not isinstance(answer.get('supportedVersions'), list):
            raise spec.CniError(spec.DECODE_FAILURE, '%s: VERSION gave no supportedVersions' % plugin_type)
        return answer['supportedVersions']

    def validate(self, netlist):
        """Every plugin is there and speaks the list's version (libcni's
        ValidateNetworkList); a plugin that does not is error 1 naming it."""
        for plugin in netlist.plugins:
            if netlist.version not in self.version(plugin['type']):
                raise spec.CniError(spec.INCOMPATIBLE_VERSION, 'incompatible CNI versions',
                                    '%s does not support cniVersion %s' % (plugin['type'], netlist.version))

    # -- the verbs --------------------------------------------------------------------
    def add(self, netlist, attachment):
        """ADD over the chain; the last result (as 1.x), cached. A failure
        DELs the chain with what was made and raises the ADD's error."""
        programs = self.find_all(netlist)
        result = None
        try:
            for program, plugin in zip(programs, netlist.plugins):
                answer = self.exec_plugin(program, 'ADD', netlist.plugin_config(
                    plugin, result, attachment.capability_args), attachment)
                if not isinstance(answer, dict):
                    raise spec.CniError(spec.DECODE_FAILURE, '%s: ADD gave no result' % plugin['type'])
                result = spec.result_from(answer)
        except spec.CniError as exc:
            self._undo(netlist, attachment, result, exc)
            raise
        self._cache(netlist, attachment, result)
        return result

    def _undo(self, netlist, attachment, result, exc):
        try:
            self._del_chain(netlist, attachment, result)
        except spec.CniError as cleanup:
            exc.details = '%s%sand DEL after it failed: %s' % (exc.details, '; ' if exc.details else '', cleanup)
            exc.args = ('%s (code %d): %s' % (exc.msg, exc.code, exc.details),)
        self._forget(netlist, attachment)

    def delete(self, netlist, attachment):
        """DEL in reverse order with the cached result as prevResult (none
        cached: none passed, as the spec allows); the cache entry goes once
        every plugin succeeded."""
        self._del_chain(netlist, attachment, self.cached(netlist, attachment))
        self._forget(netlist, attachment)

    def _del_chain(self, netlist, attachment, result):
        programs = self.find_all(netlist)
        for program, plugin in reversed(list(zip(programs, netlist.plugins))):
            self.exec_plugin(program, 'DEL', netlist.plugin_config(plugin, result, attachment.capability_args),
                             attachment)

    def check(self, netlist, attachment):
        """CHECK over the chain with the cached result; nothing cached is
        error 3 (the runtime knows no such attachment). disableCheck, or a
        version without CHECK, checks nothing."""
        if netlist.disable_check or not spec.has_verb(netlist.version, 'CHECK'):
            return
        result = self.cached(netlist, attachment)
        if result is None:
            raise spec.CniError(spec.UNKNOWN_CONTAINER, 'no cached result for %s on %s' % (attachment, netlist.name))
        programs = self.find_all(netlist)
        for program, plugin in zip(programs, netlist.plugins):
            self.exec_plugin(program, 'CHECK', netlist.plugin_config(plugin, result, attachment.capability_args),
                             attachment)

    def status(self, netlist):
        """STATUS of each plugin (1.1.0): the first not ready raises (50, 51)."""
        if not spec.has_verb(netlist.version, 'STATUS'):
            return
        for program, plugin in zip(self.find_all(netlist), netlist.plugins):
            self.exec_plugin(program, 'STATUS', netlist.plugin_config(plugin))

    def gc(self, netlist, valid):
        """GC (1.1.0): DEL every cached attachment of the network not among
        valid [Attachment], then each plugin's GC with
        cni.dev/valid-attachments. [str] of the attachments deleted."""
        keep = {(a.container_id, a.ifname) for a in valid}
        gone = []
        for stale in self.cached_attachments(netlist):
            if (stale.container_id, stale.ifname) not in keep:
                self.delete(netlist, stale)
                gone.append(str(stale))
        if netlist.disable_gc or not spec.has_verb(netlist.version, 'GC'):
            return gone
        listed = [{'containerID': a.container_id, 'ifname': a.ifname} for a in valid]
        for program, plugin in zip(self.find_all(netlist), netlist.plugins):
            config = netlist.plugin_config(plugin)
            config[spec.VALID_ATTACHMENTS] = listed
            self.exec_plugin(program, 'GC', config)
        return gone

    # -- the result cache ---------------------------------------------------------------
    def cache_path(self, netlist, attachment):
        return os.path.join(self.cache_dir, 'results', '%s-%s-%s' % (
            netlist.name, attachment.container_id, attachment.ifname))

    def _cache(self, netlist, attachment, result):
        entry = {'kind': CACHE_KIND, 'containerId': attachment.container_id, 'ifName': attachment.ifname,
                 'networkName': netlist.name, 'netns': attachment.netns, 'cniArgs': attachment.args,
                 'capabilityArgs': attachment.capability_args,
                 'config': base64.b64encode(json.dumps(netlist.doc).encode()).decode(), 'result': result}
        os.makedirs(os.path.join(self.cache_dir, 'results'), mode=0o700, exist_ok=True)
        write_atomic(self.cache_path(netlist, attachment), json.dumps(entry, sort_keys=True), mode=0o600)

    def _forget(self, netlist, attachment):
        remove_any(self.cache_path(netlist, attachment))

    def _entry(self, path):
        try:
            with open(path) as f:
                entry = json.load(f)
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and entry.get('kind') == CACHE_KIND else None

    def cached(self, netlist, attachment):
        """The result ADD cached for this attachment, or None."""
        entry = self._entry(self.cache_path(netlist, attachment))
        return entry.get('result') if entry else None

    def cached_attachments(self, netlist):
        """[Attachment] of every result cached for this network."""
        folder = os.path.join(self.cache_dir, 'results')
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            entry = self._entry(os.path.join(folder, name)) if name.startswith(netlist.name + '-') else None
            if entry and entry.get('networkName') == netlist.name:
                found.append(Attachment(entry['containerId'], entry.get('netns'), entry['ifName'],
                                        [tuple(kv) for kv in entry.get('cniArgs') or ()],
                                        entry.get('capabilityArgs')))
        return found


def interfaces(result):
    """(host side, container side) interfaces of a result: the last without
    a sandbox (bridge lists the bridge, then the veth; ptp the veth alone)
    and the first with one; each {} when the result has none."""
    found = result.get('interfaces') or []
    host = next((i for i in reversed(found) if not i.get('sandbox')), {})
    inside = next((i for i in found if i.get('sandbox')), {})
    return host, inside
