"""The CNI specification's shared vocabulary (containernetworking/cni SPEC.md,
1.1.0): versions, error codes, the error document and the result document.

Both sides of the protocol use it: the plugin (podnet-cni) answers with these
documents, and podnet's runtime side (which drives a chain of plugins, ours or
Debian's) reads them. Nothing here touches the kernel.
"""
import json

SPEC_VERSION = '1.1.0'
# The versions podnet speaks, oldest first. 0.4.0 is the first with CHECK and
# prevResult on DEL; 1.1.0 adds STATUS and GC.
SUPPORTED_VERSIONS = ('0.4.0', '1.0.0', '1.1.0')

# Error codes, SPEC.md "Error" (1-99 are the spec's; 100 and up a plugin's own).
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50            # STATUS: the plugin cannot serve ADDs now
NOT_AVAILABLE_EXISTING = 51   # STATUS: ... and existing attachments may be hurt
PODNET_FAILURE = 100          # podnet's own: the kernel refused a change
INTERFACE_EXISTS = 101        # ADD: CNI_IFNAME is taken in the container's namespace
ATTACHMENT_DIFFERS = 102      # CHECK: the kernel differs from prevResult
ADDRESS_EXHAUSTED = 103       # ADD: the pod CIDR has no free address
NO_BRIDGE = 104               # ADD: the node's bridge is missing

VALID_ATTACHMENTS = 'cni.dev/valid-attachments'   # GC's list of what to keep


def version_key(version):
    """'1.0.0' -> (1, 0, 0), for ordering; a malformed version is an error."""
    try:
        parts = tuple(int(p) for p in version.split('.'))
    except (AttributeError, ValueError):
        parts = ()
    if len(parts) != 3:
        raise CniError(DECODE_FAILURE, 'invalid cniVersion %r' % (version,), 'expected MAJOR.MINOR.PATCH')
    return parts


def check_version(version):
    """Refuse a cniVersion podnet does not speak (error code 1)."""
    version_key(version)
    if version not in SUPPORTED_VERSIONS:
        raise CniError(INCOMPATIBLE_VERSION, 'incompatible CNI versions',
                       'config is %r, plugin supports %s' % (version, list(SUPPORTED_VERSIONS)))
    return version


def has_verb(version, verb):
    """Whether a config of this cniVersion may be sent this verb."""
    if verb in ('STATUS', 'GC'):
        return version_key(version) >= (1, 1, 0)
    if verb == 'CHECK':
        return version_key(version) >= (0, 4, 0)
    return True


class CniError(Exception):
    """An error as the spec prints it: a code, a message, details."""

    def __init__(self, code, msg, details=''):
        super().__init__('%s (code %d)%s' % (msg, code, ': ' + details if details else ''))
        self.code, self.msg, self.details = code, msg, details

    def document(self, version=SPEC_VERSION):
        doc = {'cniVersion': version, 'code': self.code, 'msg': self.msg}
        if self.details:
            doc['details'] = self.details
        return doc

    @classmethod
    def from_document(cls, text, plugin):
        """The error a plugin printed, or a decode error naming the plugin."""
        try:
            doc = json.loads(text)
            return cls(int(doc['code']), '%s: %s' % (plugin, doc['msg']), doc.get('details', ''))
        except (ValueError, KeyError, TypeError):
            return cls(DECODE_FAILURE, '%s failed without a valid error document' % plugin, text.strip()[:400])


def result_for(result, version):
    """A 1.x result (ips without 'version') written for the config's version:
    0.4.0 tags each IP with its family."""
    out = dict(result, cniVersion=version)
    if version_key(version) < (1, 0, 0):
        out['ips'] = [dict(ip, version='6' if ':' in ip['address'] else '4') for ip in result.get('ips', ())]
    return out


def result_from(doc):
    """Any supported version's result read as 1.x: the 'version' tags dropped."""
    out = dict(doc)
    out['ips'] = [{k: v for k, v in ip.items() if k != 'version'} for ip in doc.get('ips', ())]
    return out
