"""Kubernetes validation rules shared by every kind podnet reads.

The API server's name patterns, label checks, field-set checks and small
typed readers live here once, so that Pods (manifests) and NetworkPolicies
(netpol) refuse the same input with the same words. Every helper takes the
field path `at` and the `subject` (`file: Kind ns/name`) and raises a
SpecError naming both.
"""
import json
import re

from ansible.module_utils.podnet.core.errors import SpecError

DEFAULT_NAMESPACE = 'default'
SYSTEM_NAMESPACE = 'kube-system'  # holds the cluster DNS; exists in every cluster, as default does
NAME_LABEL = 'kubernetes.io/metadata.name'
PROTOCOLS = ('TCP', 'UDP', 'SCTP')
HOSTNAME_MAX = 63  # the kernel's 64-byte hostname less its NUL

DNS_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
DNS_SUBDOMAIN = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
QUALIFIED_NAME = re.compile(r'^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$')
LABEL_TEXT = '1-63 letters, digits, -, _ or . starting and ending with a letter or digit'


def fields(raw, at, subject, known, ignored=(), neutral=None):
    """raw as a dict ({} for None), its field names checked.

    known: fields the caller reads; ignored: fields that change nothing in
    podnet (accepted so manifests from a cluster run unchanged); neutral:
    {field: its Kubernetes default} for fields podnet cannot honour, accepted
    only with that default. Anything else is refused as unknown, as the API
    server refuses a misspelt field.
    """
    if raw is not None and not isinstance(raw, dict):
        raise SpecError(subject, '%s: must be a mapping' % at)
    neutral = neutral or {}
    for key, value in (raw or {}).items():
        if key in neutral and value not in (None, neutral[key]):
            raise SpecError(subject, '%s.%s: not supported by podnet (only the default, %s)'
                            % (at, key, json.dumps(neutral[key])))
        if key not in known and key not in ignored and key not in neutral:
            raise SpecError(subject, '%s.%s: unknown field (known: %s)'
                            % (at, key, ', '.join((*known, *ignored, *neutral))))
    return raw or {}


def section(raw, key, subject):
    """raw[key], which must be a mapping (metadata, spec)."""
    value = raw.get(key)
    if not isinstance(value, dict):
        raise SpecError(subject, '%s: required, must be a mapping' % key)
    return value


def items(raw, at, subject, of=object):
    """raw as a list ([] for None) whose items are all of type `of`."""
    if raw is not None and (not isinstance(raw, list)
                            or not all(isinstance(v, of) for v in raw)):
        raise SpecError(subject, '%s: must be a list%s' % (at, ' of strings' if of is str else ''))
    return list(raw or [])


def name(value, at, subject, label=False):
    """A DNS-1123 subdomain (253 characters), or with label=True a DNS-1123
    label (63 characters, no dots)."""
    pattern, limit, kind = (DNS_LABEL, 63, 'label') if label else (DNS_SUBDOMAIN, 253, 'subdomain')
    if not isinstance(value, str) or not value:
        raise SpecError(subject, '%s: required, must be a non-empty string' % at)
    if len(value) > limit or not pattern.match(value):
        raise SpecError(subject, "%s: %r is not a DNS-1123 %s (lowercase letters, digits and "
                        "'-', at most %d characters)" % (at, value, kind, limit))
    return value


def namespace_of(meta, subject):
    """metadata.namespace, `default` when not given."""
    if meta.get('namespace') in (None, ''):
        return DEFAULT_NAMESPACE
    return name(meta['namespace'], 'metadata.namespace', subject, label=True)


def _qualified(text):
    return len(text) <= 63 and QUALIFIED_NAME.match(text)


def label_key(key, at, subject):
    prefix, _, last = key.rpartition('/') if isinstance(key, str) else ('', '', '')
    if not _qualified(last) or '/' in key and (
            len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        raise SpecError(subject, '%s: %r is not a label key ([DNS-1123 subdomain/]name, '
                        'the name %s)' % (at, key, LABEL_TEXT))
    return key


def label_value(value, at, subject):
    if not isinstance(value, str) or value and not _qualified(value):
        raise SpecError(subject, '%s: %r is not a label value (a string, empty or %s)'
                        % (at, value, LABEL_TEXT))
    return value


def labels(raw, at, subject):
    """A label map ({} for None), every key and value checked."""
    if raw is not None and not isinstance(raw, dict):
        raise SpecError(subject, '%s: must be a mapping' % at)
    for key, value in (raw or {}).items():
        label_key(key, at, subject)
        label_value(value, '%s[%r]' % (at, key), subject)
    return dict(raw or {})


def port_number(value, at, subject):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise SpecError(subject, '%s: %r must be a port number (an integer from 1 to 65535)'
                        % (at, value))
    return value


def port_name(value, at, subject):
    """An IANA service name, as a named container port or policy port."""
    if not (isinstance(value, str) and len(value) <= 15 and DNS_LABEL.match(value)
            and '--' not in value and re.search('[a-z]', value)):
        raise SpecError(subject, "%s: %r is not an IANA service name (1-15 lowercase "
                        "letters, digits, inner single '-', a letter)" % (at, value))
    return value


def protocol(value, at, subject):
    """TCP (when not given), UDP or SCTP."""
    value = 'TCP' if value is None else value
    if value not in PROTOCOLS:
        raise SpecError(subject, '%s: %r is not supported (%s)' % (at, value, ', '.join(PROTOCOLS)))
    return value


def hostname(pod_name):
    """The hostname the kubelet gives a pod: its name cut to 63 characters,
    then stripped of trailing '-' and '.' so the cut still reads as a name
    (kubelet's truncatePodHostnameIfNeeded)."""
    return pod_name[:HOSTNAME_MAX].rstrip('-.')
