"""Pods wired by a chain of CNI plugins instead of by podnet (`podnet_cni`
other than native): podnet makes the sandbox (the network namespace
cni-<id>, held by pause, lo up), then runs the chain's ADD on it
(CNI_NETNS=/run/netns/cni-<id>, CNI_IFNAME=eth0, CNI_CONTAINERID=<pod uid>)
through cni/runtime.py, as a container runtime runs libcni.

The pod's record takes its address, veth and MAC from the chain's result,
not from podnet's IPAM, and keeps the network configuration list that
wired it: removing the pod runs that list's DEL (also once the node has
moved to another chain), and the pod's CHECK is that list's CHECK. A pod
wired by another list than the one wanted (or natively) is made again.
"""
import ipaddress
import os

from ansible.module_utils.podnet.cni import runtime as cni
from ansible.module_utils.podnet.cni import spec
from ansible.module_utils.podnet.core.errors import PodnetError, SpecError
from ansible.module_utils.podnet.pods.sandbox import netns_path

CNI_DIR = 'cni'    # in the state dir: results/ (the result cache), networks/ (host-local's dataDir)
IFNAME = 'eth0'
DEFAULT_CNI_PATH = ('/usr/lib/cni', '/opt/cni/bin')


class ChainError(PodnetError):
    """A plugin of the chain refused or failed (its CNI error code and message)."""


def _subject(record):
    return record.get('key') or record['uid']


def runtime_for(state_dir, cni_path=DEFAULT_CNI_PATH):
    return cni.Runtime(cni_path, os.path.join(state_dir, CNI_DIR))


def attachment(record):
    return cni.Attachment(record['uid'], netns_path(record['netns']), IFNAME)


def wiring(record):
    """What wired a record: the network name of its list, or 'native'."""
    return record['cni']['name'] if record.get('cni') else 'native'


class PodChain:
    """netlist: the cni.NetworkList wanted; rt: the cni.Runtime."""

    def __init__(self, netlist, rt):
        self.netlist, self.rt = netlist, rt

    @classmethod
    def load(cls, source, state_dir, cni_path=DEFAULT_CNI_PATH):
        """The list in source (a .conflist path, the list as a dict, or its
        JSON text), checked with every plugin found and speaking its
        version, before anything changes; a fault is a SpecError naming
        the option and the CNI error's field."""
        rt = runtime_for(state_dir, cni_path)
        given = isinstance(source, dict) or source.lstrip().startswith('{')
        subject = 'cni_config' if given else 'cni_conflist %s' % source
        try:
            if isinstance(source, dict):
                netlist = cni.NetworkList(source, subject)
            else:
                netlist = cni.NetworkList.parse(source, subject) if given else cni.NetworkList.load(source)
            rt.validate(netlist)
        except spec.CniError as exc:
            raise SpecError(subject, str(exc))
        return cls(netlist, rt)

    @property
    def name(self):
        return self.netlist.name

    def add(self, record):
        """ADD the pod's sandbox to the chain; its ip, veth and mac, from the
        result, go into the record (a chain's ADD that fails leaves nothing)."""
        try:
            result = self.rt.add(self.netlist, attachment(record))
        except spec.CniError as exc:
            raise ChainError(_subject(record), 'CNI ADD on %s: %s' % (self.name, exc))
        host, inside = cni.interfaces(result)
        addresses = [ip['address'] for ip in result.get('ips') or () if ':' not in ip['address']]
        if not addresses:
            self.delete(record, self.netlist)
            raise ChainError(_subject(record), 'CNI ADD on %s gave no IPv4 address: %s' % (self.name, result))
        record.update(ip=str(ipaddress.IPv4Interface(addresses[0]).ip), veth=host.get('name') or '',
                      mac=inside.get('mac') or '', cni=self.netlist.doc)

    def delete(self, record, netlist=None):
        """DEL the pod from the list that wired it (idempotent)."""
        netlist = netlist or cni.NetworkList(record['cni'])
        try:
            self.rt.delete(netlist, attachment(record))
        except spec.CniError as exc:
            raise ChainError(_subject(record), 'CNI DEL on %s: %s' % (netlist.name, exc))

    def problems(self, record):
        """Why the pod is not as the chain wired it: wired by another list,
        or the chain's CHECK failed ([] when it passed)."""
        if record.get('cni') != self.netlist.doc:
            return ['wired by %s, want %s' % (wiring(record), self.name)]
        try:
            self.rt.check(self.netlist, attachment(record))
        except spec.CniError as exc:
            return ['CNI CHECK on %s: %s' % (self.name, exc)]
        return []


def unwire(record, chain, state_dir, cni_path=DEFAULT_CNI_PATH):
    """DEL a chain-wired pod (nothing for a pod podnet wired): through the
    chain wanted, else (native, or state absent) with the plugins found in
    cni_path; always with the list the record keeps."""
    if record.get('cni'):
        (chain or PodChain(None, runtime_for(state_dir, cni_path))).delete(record)
