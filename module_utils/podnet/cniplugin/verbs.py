"""podnet-cni's verbs (containernetworking/cni SPEC.md 1.1.0): one function
each, as the reference bridge plugin maps them, and `handle`, which turns
one call (environment, stdin) into what the plugin prints and its exit
status. Every failure is the spec's error document, with the code and a
message naming the field or variable; an ADD that fails removes what it
made (its address, its veth) before it answers.
"""
import json

from ansible.module_utils.podnet.cni.spec import (
    ATTACHMENT_DIFFERS,
    INVALID_CONFIG,
    NO_BRIDGE,
    NOT_AVAILABLE,
    NOT_AVAILABLE_EXISTING,
    PODNET_FAILURE,
    SPEC_VERSION,
    SUPPORTED_VERSIONS,
    CniError,
    result_for,
)
from ansible.module_utils.podnet.cniplugin import addresses, guard, wiring
from ansible.module_utils.podnet.cniplugin.config import read_request
from ansible.module_utils.podnet.core.errors import PodnetError
from ansible.module_utils.podnet.kernel import rawnl
from ansible.module_utils.podnet.pods.ipam import attachment_mac, attachment_veth


def handle(env, stdin, home=None, housekeeping=None):
    """(stdout text, exit status) of one call. home: an Rtnl in the node's
    namespace to reuse (the resident server's), else one is opened;
    housekeeping: what the node is left after a call's kernel work, removing
    veths and rendering the source guard (wiring.Housekeeping, at once, by
    default; the server's, after the answer)."""
    version = SPEC_VERSION
    own = home is None
    housekeeping = housekeeping or wiring.Housekeeping()
    try:
        request = read_request(env, stdin)
        version = request.version if request.version in SUPPORTED_VERSIONS else SPEC_VERSION
        if request.verb == 'VERSION':
            return json.dumps({'cniVersion': version, 'supportedVersions': list(SUPPORTED_VERSIONS)}), 0
        home = rawnl.Rtnl() if own else home
        result = VERBS[request.verb](request, home, housekeeping)
        return ('' if result is None else json.dumps(result_for(result, version))), 0
    except CniError as exc:
        return json.dumps(exc.document(_spoken(stdin, version))), 1
    except Exception as exc:  # noqa: BLE001 the outermost: any failure still answers with an error document
        failed = CniError(PODNET_FAILURE, 'podnet-cni failed', '%s: %s' % (type(exc).__name__, exc))
        return json.dumps(failed.document(version)), 1
    finally:
        if own and home is not None:
            home.close()


def _spoken(stdin, version):
    """The version an error is written in: the config's, if podnet speaks it."""
    try:
        said = json.loads(stdin).get('cniVersion')
    except (ValueError, AttributeError, TypeError):
        return version
    return said if said in SUPPORTED_VERSIONS else version


def _bridge(request, home):
    link = home.link(request.bridge)
    if link is None:
        raise CniError(NO_BRIDGE, 'bridge not found', 'bridge %s does not exist on this node' % request.bridge)
    return link


def add(request, home, housekeeping):
    bridge = _bridge(request, home)
    housekeeping.settle(attachment_veth(request.attachment))  # a DEL of the same attachment just before
    inside = wiring.enter(request.netns)
    try:
        wiring.refuse_taken(inside, request.netns, request.ifname)  # before an address is taken
        ipam = addresses.for_request(request)
        lease = ipam.lease()
        made = wiring.Wiring(request.netns, request.ifname, attachment_veth(request.attachment),
                             attachment_mac(request.attachment), request.mtu or bridge['mtu'],
                             lease.address, lease.routes, bridge['index'])
        try:
            host_mac = wiring.attach(inside, home, made)
            _guarded(request, ipam, housekeeping)
        except BaseException:
            wiring.detach(home, made.veth)  # newest first: the veth, then the address
            ipam.release()
            raise
    finally:
        inside.close()
    return _merged(request, made, host_mac, lease)


def _guarded(request, ipam, housekeeping):
    if request.guarded_by == 'caller':
        return  # the caller renders the guard after its ADDs, under the node's lock it holds (config.py)
    try:
        housekeeping.guard(lambda: _guard(request, ipam))
    except (PodnetError, OSError) as exc:
        raise CniError(PODNET_FAILURE, 'cannot let the attachment through the source guard', str(exc))


def _guard(request, ipam):
    """The node's source guard told of this attachment (guard.py): podnet's
    own IPAM only, whose files the guard is made from. It may run after the
    answer (the server's housekeeping): nothing of the call's is used."""
    if isinstance(ipam, addresses.OwnIpam):
        guard.refresh(request.state_dir, ipam.ipam, request.bridge)


def _merged(request, made, host_mac, lease):
    """This attachment's result after prevResult's (a plugin earlier in the
    chain): its interfaces, IPs and routes kept, ours appended."""
    prev = request.prev or {}
    interfaces = list(prev.get('interfaces') or [])
    host = {'name': made.veth, 'mac': host_mac}
    container = {'name': made.ifname, 'mac': made.mac, 'sandbox': made.netns}
    if request.version == '1.1.0':
        host['mtu'] = container['mtu'] = made.mtu
    interfaces += [host, container]
    ip = {'address': lease.address, 'interface': len(interfaces) - 1}
    if lease.gateway:
        ip['gateway'] = lease.gateway
    result = {'cniVersion': request.version, 'interfaces': interfaces,
              'ips': list(prev.get('ips') or []) + [ip],
              'routes': list(prev.get('routes') or []) + [{'dst': dst, 'gw': gw} for dst, gw in made.routes],
              'dns': request.dns or prev.get('dns') or {}}
    return result


def delete(request, home, housekeeping):
    """Idempotent: with or without prevResult or the namespace, twice."""
    housekeeping.remove(home, attachment_veth(request.attachment))
    addresses.for_request(request).release()


def check(request, home, housekeeping):
    if not request.prev:
        raise CniError(INVALID_CONFIG, 'invalid network configuration', 'CHECK needs prevResult')
    interfaces = request.prev.get('interfaces') or []
    ours = [i for i, f in enumerate(interfaces) if f.get('name') == request.ifname
            and f.get('sandbox') == request.netns]
    if not ours:
        raise CniError(ATTACHMENT_DIFFERS, 'attachment differs from prevResult',
                       'prevResult has no interface %s in %s' % (request.ifname, request.netns))
    housekeeping.settle(attachment_veth(request.attachment))
    inside = wiring.enter(request.netns)
    try:
        found = wiring.inspect(inside, request.ifname)
    finally:
        inside.close()
    expected = interfaces[ours[0]]
    ips = [ip for ip in request.prev.get('ips') or () if ip.get('interface') == ours[0]]
    problems = _differences(request, found, expected, ips)
    problems += _host_end(request, home, interfaces)
    if problems:
        raise CniError(ATTACHMENT_DIFFERS, 'attachment differs from prevResult', '; '.join(problems))
    for ip in ips:
        addresses.for_request(request).check(ip['address'].split('/')[0])


def _differences(request, found, expected, ips):
    name = '%s in %s' % (request.ifname, request.netns)
    if found is None:
        return ['interface %s not found' % name]
    problems = []
    if expected.get('mac') and found['mac'] != expected['mac'].lower():
        problems.append('%s: mac is %s, prevResult says %s' % (name, found['mac'], expected['mac']))
    want_mtu = expected.get('mtu') or request.mtu
    if want_mtu and found['mtu'] != want_mtu:
        problems.append('%s: mtu is %s, expected %s' % (name, found['mtu'], want_mtu))
    if not found['up']:
        problems.append('%s is down' % name)
    for ip in ips:
        if ip['address'] not in found['addresses']:
            problems.append('%s: address %s missing (it has %s)' % (
                name, ip['address'], ', '.join(found['addresses']) or 'none'))
        if ip.get('gateway') and ip['gateway'] not in found['gateways']:
            problems.append('%s: no default route via %s (routes via %s)' % (
                name, ip['gateway'], ', '.join(found['gateways']) or 'none'))
    return problems


def _host_end(request, home, interfaces):
    veth = attachment_veth(request.attachment)
    if not any(f.get('name') == veth and not f.get('sandbox') for f in interfaces):
        return ['prevResult has no host interface %s' % veth]
    bridge = home.link(request.bridge)
    link = home.link(veth)
    if link is None:
        return ['host interface %s not found' % veth]
    if bridge is None or link['master'] != bridge['index']:
        return ['host interface %s is not on bridge %s' % (veth, request.bridge)]
    return []


def status(request, home, _housekeeping):
    """Success when ADDs can be served; 50 when not (no bridge, no pod
    CIDR, IPAM folder not writable or full); 51 when the bridge is there
    but down or without an address: the existing attachments are cut off."""
    bridge = home.link(request.bridge)
    if bridge is None:
        raise CniError(NOT_AVAILABLE, 'plugin not available', 'bridge %s does not exist' % request.bridge)
    if not bridge['flags'] & rawnl.IFF_UP:
        raise CniError(NOT_AVAILABLE_EXISTING, 'plugin not available, attachments hurt',
                       'bridge %s is down' % request.bridge)
    if not any(index == bridge['index'] for index, address in home.addresses()):
        raise CniError(NOT_AVAILABLE_EXISTING, 'plugin not available, attachments hurt',
                       'bridge %s has no address: no gateway for the attachments' % request.bridge)
    why = addresses.for_request(request).status()
    if why:
        raise CniError(NOT_AVAILABLE, 'plugin not available', why)


def collect(request, home, housekeeping):
    """GC: what of this network is not in cni.dev/valid-attachments goes."""
    valid = {(a['containerID'], a['ifname']) for a in request.valid or ()}
    for veth in addresses.for_request(request).collect(valid):
        housekeeping.remove(home, veth)


VERBS = {'ADD': add, 'DEL': delete, 'CHECK': check, 'STATUS': status, 'GC': collect}
