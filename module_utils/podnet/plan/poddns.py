"""A pod's DNS fields (spec.dnsPolicy, spec.dnsConfig, spec.subdomain) as
the API server validates them (validatePodDNSConfig), and what the node
needs of them: the kubelet's part, writing /etc/resolv.conf and /etc/hosts,
is pods/podfiles.py.

A policy of None needs a dnsConfig with at least one nameserver; a
dnsConfig has at most 3 nameservers, each an IP address, at most 32
search domains of 2048 characters in all (spaces counted), each a DNS-1123
subdomain (a final dot allowed), and options that all have a name.
"""
import ipaddress
from dataclasses import dataclass

from ansible.module_utils.podnet.core import k8s
from ansible.module_utils.podnet.core.errors import SpecError

POLICIES = ('ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None')
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
CONFIG = ('nameservers', 'searches', 'options')


@dataclass(frozen=True)
class PodDns:
    policy: str = 'ClusterFirst'
    nameservers: tuple = ()
    searches: tuple = ()
    options: tuple = ()  # ((name, value or None), ...), in manifest order
    subdomain: object = None  # spec.subdomain, or None

    def for_node(self, cluster_dns, domain):
        """What the node writes the pod's files from (pods/podfiles.py):
        cluster_dns, the cluster DNS Service's address or None without one."""
        return {'policy': self.policy, 'nameservers': list(self.nameservers), 'searches': list(self.searches),
                'options': [list(option) for option in self.options], 'cluster_dns': cluster_dns,
                'domain': domain}


def parse(spec, subject):
    """The PodDns of a pod's spec (validated; defaults filled in)."""
    policy = spec.get('dnsPolicy') or POLICIES[0]
    if policy not in POLICIES:
        raise SpecError(subject, 'spec.dnsPolicy: %r must be one of %s' % (policy, ', '.join(POLICIES)))
    config = k8s.fields(spec.get('dnsConfig'), 'spec.dnsConfig', subject, CONFIG)
    if policy == 'None' and not config.get('nameservers'):
        raise SpecError(subject, 'spec.dnsConfig.nameservers: must provide at least one DNS nameserver '
                        'when dnsPolicy is None')
    subdomain = spec.get('subdomain') or None
    if subdomain is not None:
        k8s.name(subdomain, 'spec.subdomain', subject, label=True)
    return PodDns(policy, _nameservers(config, subject), _searches(config, subject), _options(config, subject),
                  subdomain)


def _nameservers(config, subject):
    found = k8s.items(config.get('nameservers'), 'spec.dnsConfig.nameservers', subject, str)
    if len(found) > MAX_NAMESERVERS:
        raise SpecError(subject, 'spec.dnsConfig.nameservers: must not have more than %d nameservers'
                        % MAX_NAMESERVERS)
    for index, address in enumerate(found):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise SpecError(subject, 'spec.dnsConfig.nameservers[%d]: %r must be a valid IP address'
                            % (index, address)) from None
    return tuple(found)


def _searches(config, subject):
    found = k8s.items(config.get('searches'), 'spec.dnsConfig.searches', subject, str)
    if len(found) > MAX_SEARCHES:
        raise SpecError(subject, 'spec.dnsConfig.searches: must not have more than %d search paths' % MAX_SEARCHES)
    if len(' '.join(found)) > MAX_SEARCH_CHARS:
        raise SpecError(subject, 'spec.dnsConfig.searches: must not have more than %d characters (including '
                        'spaces) in the search list' % MAX_SEARCH_CHARS)
    for index, search in enumerate(found):
        k8s.name(search[:-1] if search.endswith('.') else search, 'spec.dnsConfig.searches[%d]' % index, subject)
    return tuple(found)


def _options(config, subject):
    found = []
    for index, option in enumerate(k8s.items(config.get('options'), 'spec.dnsConfig.options', subject)):
        at = 'spec.dnsConfig.options[%d]' % index
        option = k8s.fields(option, at, subject, ('name', 'value'))
        if not isinstance(option.get('name'), str) or not option['name']:
            raise SpecError(subject, '%s.name: must not be empty' % at)
        if option.get('value') is not None and not isinstance(option['value'], str):
            raise SpecError(subject, '%s.value: must be a string' % at)
        found.append((option['name'], option.get('value')))
    return tuple(found)
