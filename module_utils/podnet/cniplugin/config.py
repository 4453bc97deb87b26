"""What one podnet-cni call is asked: the runtime's environment (CNI_*) and
the network configuration on stdin, read and checked before anything
changes, so that bad input fails with the spec's error code and a message
naming the variable or field, and leaves nothing behind.

The configuration podnet-cni reads (docs/cni.md), besides the spec's own
`cniVersion`, `name`, `type`, `prevResult`, `runtimeConfig` and, for GC,
`cni.dev/valid-attachments`:
  bridge    the node's bridge the host ends go on (default cni0)
  mtu       of both veth ends (default the bridge's: the node's pod MTU)
  stateDir  the node's state directory (default /var/lib/podnet), where
            the pod CIDR and the IPAM files shared with podnet's pods are
  ipam      absent, or without `type`: podnet's own IPAM over the node's
            pod CIDR (or `ipam.subnet`); with `type`: that IPAM plugin,
            exec'd from CNI_PATH (for example Debian's host-local)
  dns       passed on in the result as given
  sourceGuard
            who tells the node's source guard (pods/srcguard.py) of a new
            attachment: `plugin` (the default) renders it again after ADD,
            under the node's lock (cniplugin/guard.py), for a runtime that
            knows nothing of podnet (podman); `caller` leaves it to the
            caller, which renders the guard itself after its ADDs. The
            pods module says `caller` (roles/pods/templates/cni/
            podnet-cni.conflist.j2): it holds the node's lock for its whole
            run, so an ADD that took the lock would wait for the run that
            waits for the ADD, until the lock's wait ran out.
Other fields are a runtime's or another plugin's business and are ignored.
"""
import ipaddress
import json
import re

from ansible.module_utils.podnet.cni.spec import (
    DECODE_FAILURE,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    UNSUPPORTED_FIELD,
    VALID_ATTACHMENTS,
    CniError,
    check_version,
    has_verb,
    result_from,
)
from ansible.module_utils.podnet.core.names import IFNAMSIZ

VERBS = ('ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION')
# The environment each verb needs (SPEC.md, "Parameters" of each verb).
NEEDS = {'ADD': ('CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'),
         'DEL': ('CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'),
         'CHECK': ('CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'),
         'STATUS': ('CNI_PATH',), 'GC': ('CNI_PATH',), 'VERSION': ()}
# A network name and a container ID (SPEC.md): alphanumeric first, then
# alphanumerics, underscore, dot and hyphen.
IDENTIFIER = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
DEFAULT_BRIDGE = 'cni0'
DEFAULT_STATE_DIR = '/var/lib/podnet'
OWN_IPAM_FIELDS = ('subnet',)
GUARDED_BY = ('plugin', 'caller')  # sourceGuard's values: who renders the source guard after ADD


class Request:
    """One call: `verb`, `version`, `conf` (the whole configuration, as
    read), the attachment (`container`, `netns`, `ifname`), `cni_path`
    (folders), and the checked fields of podnet-cni's own."""

    def __init__(self, verb, conf, env):
        self.verb, self.conf = verb, conf
        self.version = conf.get('cniVersion', '1.1.0')
        self.container = env.get('CNI_CONTAINERID', '')
        self.netns = env.get('CNI_NETNS', '')
        self.ifname = env.get('CNI_IFNAME', '')
        self.cni_path = [p for p in env.get('CNI_PATH', '').split(':') if p]
        self.env = env
        self.network = conf.get('name', '')
        self.bridge = conf.get('bridge', DEFAULT_BRIDGE)
        self.mtu = conf.get('mtu')
        self.state_dir = conf.get('stateDir', DEFAULT_STATE_DIR)
        self.ipam = conf.get('ipam') or {}
        self.subnet = self.ipam.get('subnet')
        self.delegate = self.ipam.get('type')
        self.dns = conf.get('dns') or {}
        self.guarded_by = conf.get('sourceGuard', GUARDED_BY[0])
        self.prev = result_from(conf['prevResult']) if conf.get('prevResult') else None
        self.valid = conf.get(VALID_ATTACHMENTS)

    @property
    def attachment(self):
        """The owner id of this attachment's address in podnet's IPAM files:
        `cni/<network>/<container id>/<ifname>`, which no pod's uid equals
        (pods/ipam.py keeps such files from the pods module's sweep)."""
        return attachment_id(self.network, self.container, self.ifname)


def attachment_id(network, container, ifname):
    return 'cni/%s/%s/%s' % (network, container, ifname)


def read_request(env, stdin):
    """A checked Request from the environment and the bytes on stdin."""
    verb = env.get('CNI_COMMAND', '')
    if verb not in VERBS:
        raise CniError(INVALID_ENVIRONMENT, 'invalid CNI_COMMAND',
                       'CNI_COMMAND is %r, expected one of %s' % (verb, ', '.join(VERBS)))
    conf = decode(stdin, required=verb != 'VERSION')
    if verb == 'VERSION':
        if 'cniVersion' in conf:
            check_version(conf['cniVersion'])
        return Request(verb, conf, env)
    check_conf(verb, conf)
    missing = [name for name in NEEDS[verb] if not env.get(name)]
    if missing:
        raise CniError(INVALID_ENVIRONMENT, 'missing environment variables', ', '.join(missing))
    request = Request(verb, conf, env)
    check_attachment(request)
    return request


def decode(stdin, required=True):
    """The configuration object on stdin (code 6 when it is not one)."""
    try:
        text = stdin.decode() if isinstance(stdin, bytes) else stdin
        conf = json.loads(text) if text.strip() or required else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise CniError(DECODE_FAILURE, 'cannot decode the network configuration on stdin', str(exc))
    if not isinstance(conf, dict):
        raise CniError(DECODE_FAILURE, 'cannot decode the network configuration on stdin',
                       'expected a JSON object, got %s' % type(conf).__name__)
    return conf


def check_conf(verb, conf):
    """The spec's fields and podnet-cni's own, before any side effect."""
    for field in ('cniVersion', 'name', 'type'):
        if not isinstance(conf.get(field), str) or not conf[field]:
            raise CniError(INVALID_CONFIG, 'invalid network configuration', 'missing field %r' % field)
    check_version(conf['cniVersion'])
    if not has_verb(conf['cniVersion'], verb):
        raise CniError(1, 'incompatible CNI versions',
                       '%s needs cniVersion 1.1.0 or later, the config says %s' % (verb, conf['cniVersion']))
    if not IDENTIFIER.match(conf['name']):
        raise CniError(INVALID_CONFIG, 'invalid network configuration',
                       'name %r: alphanumeric first, then alphanumerics, _ . -' % conf['name'])
    _check_bridge(conf.get('bridge', DEFAULT_BRIDGE))
    _check_mtu(conf.get('mtu'))
    if not isinstance(conf.get('stateDir', DEFAULT_STATE_DIR), str) or not conf.get('stateDir', '/').startswith('/'):
        raise CniError(INVALID_CONFIG, 'invalid network configuration', 'stateDir %r: an absolute path'
                       % (conf.get('stateDir'),))
    _check_ipam(conf.get('ipam'))
    if conf.get('sourceGuard', GUARDED_BY[0]) not in GUARDED_BY:
        raise CniError(INVALID_CONFIG, 'invalid network configuration', 'sourceGuard %r: one of %s'
                       % (conf['sourceGuard'], ', '.join(GUARDED_BY)))
    for field, kind in (('dns', dict), ('prevResult', dict), (VALID_ATTACHMENTS, list)):
        if conf.get(field) is not None and not isinstance(conf[field], kind):
            raise CniError(INVALID_CONFIG, 'invalid network configuration',
                           '%s: expected a %s' % (field, 'list' if kind is list else 'object'))
    if verb == 'GC':
        _check_attachments(conf.get(VALID_ATTACHMENTS) or [])


def _check_bridge(bridge):
    if not isinstance(bridge, str) or not 0 < len(bridge.encode()) <= IFNAMSIZ or '/' in bridge:
        raise CniError(INVALID_CONFIG, 'invalid network configuration', 'bridge %r: an interface name' % (bridge,))


def _check_mtu(mtu):
    if mtu is not None and (not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535):
        raise CniError(INVALID_CONFIG, 'invalid network configuration', 'mtu %r: an integer from 68 to 65535' % (mtu,))


def _check_ipam(ipam):
    if ipam is None:
        return
    if not isinstance(ipam, dict):
        raise CniError(INVALID_CONFIG, 'invalid network configuration', 'ipam: expected an object')
    if ipam.get('type') is not None:
        if not isinstance(ipam['type'], str) or not ipam['type'] or '/' in ipam['type']:
            raise CniError(INVALID_CONFIG, 'invalid network configuration',
                           'ipam.type %r: the file name of an IPAM plugin' % (ipam['type'],))
        return
    for key in sorted(set(ipam) - set(OWN_IPAM_FIELDS) - {'type'}):
        raise CniError(UNSUPPORTED_FIELD, 'unsupported field in network configuration',
                       'ipam.%s = %s: podnet-cni\'s own IPAM takes only %s (give ipam.type to use another)'
                       % (key, json.dumps(ipam[key]), ', '.join(OWN_IPAM_FIELDS)))
    if 'subnet' in ipam:
        parse_subnet(ipam['subnet'], 'ipam.subnet')


def parse_subnet(text, field):
    """An IPv4 network with room for a gateway and pods, else code 7 naming field."""
    try:
        network = ipaddress.IPv4Network(text)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError, TypeError) as exc:
        raise CniError(INVALID_CONFIG, 'invalid network configuration', '%s %r: %s' % (field, text, exc))
    if network.prefixlen > 30:
        raise CniError(INVALID_CONFIG, 'invalid network configuration',
                       '%s %s: too small for a gateway and a pod (at most /30)' % (field, network))
    return network


def _check_attachments(valid):
    for i, item in enumerate(valid):
        if not (isinstance(item, dict) and isinstance(item.get('containerID'), str)
                and isinstance(item.get('ifname'), str)):
            raise CniError(INVALID_CONFIG, 'invalid network configuration',
                           '%s[%d]: expected {containerID, ifname}' % (VALID_ATTACHMENTS, i))


def check_attachment(request):
    """CNI_CONTAINERID and CNI_IFNAME as the spec and Linux allow them (code 4)."""
    bad = []
    if request.container and not IDENTIFIER.match(request.container):
        bad.append('CNI_CONTAINERID %r (alphanumeric first, then alphanumerics, _ . -)' % request.container)
    if request.ifname and (len(request.ifname.encode()) > IFNAMSIZ or request.ifname in ('.', '..')
                           or any(c in request.ifname for c in '/: \t\n')):
        bad.append('CNI_IFNAME %r (an interface name: at most 15 bytes, no / : or space)' % request.ifname)
    if bad:
        raise CniError(INVALID_ENVIRONMENT, 'invalid environment variables', '; '.join(bad))
