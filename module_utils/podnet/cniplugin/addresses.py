"""Where an attachment's address comes from: podnet's own IPAM (the node's
HostLocalIpam, pods/ipam.py: the very files the pods module allocates
from, one created exclusively per address, so a pod and a container never
get the same one, concurrent runs included), or an IPAM plugin the
configuration names (`ipam.type`), exec'd from CNI_PATH with the same
environment and configuration, as the spec's section 4 says: ADD, DEL,
CHECK, STATUS and GC are all delegated, and its result used.

An IPAM plugin older than 1.1.0 (Debian's host-local stops at 1.0.0) is
sent ADD, DEL and CHECK as 1.0.0, whose IPAM result is the same; STATUS and
GC, which it does not know (it answers code 1, or 4 for the CNI_COMMAND),
leave it out.

Both give a Lease on ADD: the address ('a.b.c.d/len'), the gateway and the
routes [(dst, gateway)] the interface gets.
"""
import collections
import ipaddress
import json
import os
import subprocess

from ansible.module_utils.podnet.cni.spec import (
    ADDRESS_EXHAUSTED,
    ATTACHMENT_DIFFERS,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    IO_FAILURE,
    TRY_AGAIN_LATER,
    CniError,
    result_from,
    version_key,
)
from ansible.module_utils.podnet.cniplugin.config import attachment_id, parse_subnet
from ansible.module_utils.podnet.node.nodestate import IPAM_DIR, read_pod_cidr
from ansible.module_utils.podnet.pods.ipam import ATTACHMENT, HostLocalIpam, IpamError, attachment_veth

Lease = collections.namedtuple('Lease', 'address gateway routes')
DEFAULT = '0.0.0.0/0'
DELEGATE_SECONDS = 60  # the resident server answers calls in turn: a hung IPAM plugin must not hold it


def for_request(request):
    return DelegatedIpam(request) if request.delegate else OwnIpam(request)


class OwnIpam:
    """podnet's IPAM over the node's pod CIDR (`<stateDir>/pod-cidr`, as the
    network module writes it) or `ipam.subnet`."""

    def __init__(self, request):
        self.request = request
        cidr = parse_subnet(request.subnet, 'ipam.subnet') if request.subnet else read_pod_cidr(request.state_dir)
        self.ipam = HostLocalIpam(request.state_dir, str(cidr)) if cidr else None

    def _needed(self):
        if self.ipam is None:
            raise CniError(TRY_AGAIN_LATER, 'no pod CIDR known',
                           'neither ipam.subnet nor %s/pod-cidr (the node network is not set up yet)'
                           % self.request.state_dir)
        return self.ipam

    def lease(self):
        ipam = self._needed()
        try:
            address = ipam.allocate(self.request.attachment, interface=self.request.ifname)
        except IpamError as exc:
            raise CniError(ADDRESS_EXHAUSTED, 'no free address', str(exc))
        except OSError as exc:
            raise CniError(IO_FAILURE, 'cannot write the IPAM file', '%s: %s' % (ipam.dir, exc))
        gateway = str(ipam.gateway)
        return Lease('%s/%d' % (address, ipam.network.prefixlen), gateway, [(DEFAULT, gateway)])

    def release(self):
        """Free this attachment's address: the one prevResult names, checked
        against its file's owner, else found among the files."""
        if self.ipam is None:
            return
        owner = self.request.attachment
        named = [ip['address'].split('/')[0] for ip in (self.request.prev or {}).get('ips', ())]
        held = [a for a, o in self.ipam.owners_of(named).items() if o == owner]
        for address in held or [a for a, o in self.ipam.owners().items() if o == owner]:
            self.ipam.release(address, owner)

    def check(self, address):
        owner = self.ipam and self.ipam.owners_of([address]).get(address)
        if owner != self.request.attachment:
            holder = owner or 'nobody'
            raise CniError(ATTACHMENT_DIFFERS, 'attachment differs from prevResult',
                           'IPAM: address %s is held by %s, not %s' % (address, holder, self.request.attachment))

    def status(self):
        """Why no ADD can be served now, or None."""
        if self.ipam is None:
            return 'no pod CIDR known: neither ipam.subnet nor %s/pod-cidr' % self.request.state_dir
        folder = os.path.join(self.request.state_dir, IPAM_DIR)
        probe = self.ipam.dir if os.path.isdir(self.ipam.dir) else folder if os.path.isdir(folder) \
            else self.request.state_dir
        if not os.access(probe, os.W_OK | os.X_OK):
            return 'the IPAM folder %s is not writable' % probe
        if len(self.ipam.owners()) >= self.ipam.capacity():
            return 'the pod CIDR %s has no free address' % self.ipam.network
        return None

    def collect(self, valid):
        """Release the addresses of this network's attachments not in valid
        ({(container id, ifname)}); return their veths, for the caller."""
        if self.ipam is None:
            return []
        prefix = '%s%s/' % (ATTACHMENT, self.request.network)
        keep = {attachment_id(self.request.network, c, i) for c, i in valid}
        gone = []
        for address, owner in sorted(self.ipam.owners().items()):
            if owner.startswith(prefix) and owner not in keep:
                self.ipam.release(address, owner)
                gone.append(attachment_veth(owner))
        return gone


class DelegatedIpam:
    """The IPAM plugin `ipam.type`, found in CNI_PATH."""

    def __init__(self, request):
        self.request = request

    def _exec(self, verb):
        program = next((os.path.join(d, self.request.delegate) for d in self.request.cni_path
                        if os.access(os.path.join(d, self.request.delegate), os.X_OK)), None)
        if program is None:
            raise CniError(INVALID_CONFIG, 'IPAM plugin not found',
                           'ipam.type %r: no such executable in CNI_PATH %s'
                           % (self.request.delegate, ':'.join(self.request.cni_path)))
        conf = dict(self.request.conf)
        if verb == 'ADD':
            conf.pop('prevResult', None)
        if verb in ('ADD', 'DEL', 'CHECK') and version_key(conf['cniVersion']) > (1, 0, 0):
            conf['cniVersion'] = '1.0.0'
        try:
            done = subprocess.run([program], input=json.dumps(conf).encode(), capture_output=True,
                                  env=dict(self.request.env, CNI_COMMAND=verb), check=False, timeout=DELEGATE_SECONDS)
        except subprocess.TimeoutExpired:
            raise CniError(TRY_AGAIN_LATER, 'the IPAM plugin did not answer',
                           'ipam.type %s: %s gave no answer in %d s' % (self.request.delegate, verb, DELEGATE_SECONDS))
        if done.returncode != 0:
            error = CniError.from_document(done.stdout.decode(errors='replace'), self.request.delegate)
            if verb in ('STATUS', 'GC') and error.code in (INCOMPATIBLE_VERSION, INVALID_ENVIRONMENT):
                return b''  # a plugin before 1.1.0: it has no such verb (or no such CNI_COMMAND)
            raise error
        return done.stdout

    def lease(self):
        try:
            result = result_from(json.loads(self._exec('ADD')))
            ip = result['ips'][0]
            interface = ipaddress.IPv4Interface(ip['address'])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self.release()
            raise CniError(INVALID_CONFIG, 'the IPAM plugin gave no IPv4 address',
                           'ipam.type %s: %s' % (self.request.delegate, exc))
        gateway = ip.get('gateway')
        routes = [(r['dst'], r.get('gw') or gateway) for r in result.get('routes') or ()
                  if r.get('gw') or gateway]
        if gateway and DEFAULT not in [route[0] for route in routes]:
            routes.append((DEFAULT, gateway))
        return Lease(str(interface), gateway, routes)

    def release(self):
        self._exec('DEL')

    def check(self, _address):
        self._exec('CHECK')

    def status(self):
        try:
            self._exec('STATUS')
        except CniError as exc:
            return str(exc)
        return None

    def collect(self, _valid):
        """GC is the IPAM plugin's: it holds the list of what it gave."""
        self._exec('GC')
        return []
