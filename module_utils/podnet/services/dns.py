"""The cluster DNS zone: the records the Kubernetes DNS specification
(kubernetes/dns, docs/specification.md, schema 1.1.0) asks for, made from
the cluster's Services and their endpoints, as JSON the DNS pod serves
(roles/pods/files/podnet-dns).

Each node keeps the zone at path(state_dir), written whole whenever it
changes; the DNS pod sees that folder read-only. The zone:

    {"domain": "cluster.local",
     "zones": ["cluster.local", "42.10.in-addr.arpa", "43.10.in-addr.arpa"],
     "ttl": 5,
     "names": {"web.default.svc.cluster.local": {"A": ["10.43.0.20"],
               "_http._tcp.web.default.svc.cluster.local":
                   {"SRV": [{"priority": 0, "weight": 100, "port": 80,
                             "target": "web.default.svc.cluster.local"}]},
               "20.0.43.10.in-addr.arpa": {"PTR": ["web.default.svc.cluster.local"]},
               "dns-version.cluster.local": {"TXT": ["1.1.0"]},
               ...}}

An ExternalName Service is a CNAME to its externalName. Names are lower
case, without the final dot. A name whose entry is empty
exists with no records (a headless Service without ready endpoints: an
empty answer, not NXDOMAIN). `zones` are where the server answers with
authority: the cluster domain and the /16 reverse zones of the addresses it
names (the cluster and service CIDRs); anything else is refused, as there
is no upstream resolver.
"""
import ipaddress
import os

SCHEMA_VERSION = '1.1.0'
TTL = 5  # seconds, CoreDNS's kubernetes plugin's default
DNS_DIR = 'dns'
RECORDS_FILE = 'records.json'
SRV_WEIGHT = 100  # shared among a name's targets, as CoreDNS does


def path(state_dir):
    """Where a node keeps the zone: <state_dir>/dns/records.json."""
    return os.path.join(state_dir, DNS_DIR, RECORDS_FILE)


def records(services, endpoints, domain='cluster.local'):
    """The zone (above) of services (the plan's list) with their endpoints
    ({'ns/svc': [{ip, pod, hostname, subdomain, ports}]}, ready ones).
    The same input gives the same output, key for key and list for list."""
    domain = domain.lower().rstrip('.')
    names = {'dns-version.' + domain: {'TXT': [SCHEMA_VERSION]}}
    for service in sorted(services, key=lambda s: (s['namespace'], s['name'])):
        fqdn = ('%s.%s.svc.%s' % (service['name'], service['namespace'], domain)).lower()
        found = endpoints.get('%s/%s' % (service['namespace'], service['name'])) or []
        if service.get('type') == 'ExternalName':
            _add(names, fqdn, 'CNAME', service['external_name'].lower().rstrip('.'))
        elif service.get('cluster_ip'):
            _cluster_ip(names, fqdn, service)
        else:
            _headless(names, fqdn, service, found)
    return {'domain': domain, 'zones': [domain] + _reverse_zones(names), 'ttl': TTL,
            'names': {name: _sorted(entry) for name, entry in sorted(names.items())}}


def _cluster_ip(names, fqdn, service):
    """A, PTR and one SRV per named port, to the Service's own name."""
    _add(names, fqdn, 'A', service['cluster_ip'])
    _add(names, _reverse(service['cluster_ip']), 'PTR', fqdn)
    for port in _named(service):
        _add(names, _srv_name(port, fqdn), 'SRV',
             {'priority': 0, 'weight': SRV_WEIGHT, 'port': port['port'], 'target': fqdn})


def _headless(names, fqdn, service, endpoints):
    """The ready endpoints' addresses under the Service's name, each under
    its own name too (its hostname, or its address in dashes), PTRs to
    those names, and per named port an SRV for each endpoint."""
    names.setdefault(fqdn, {})
    ports = _named(service)
    weight = SRV_WEIGHT // len(endpoints) if endpoints else SRV_WEIGHT
    for endpoint in sorted(endpoints, key=lambda e: (e['ip'], e.get('pod') or '')):
        own = '%s.%s' % (_endpoint_label(endpoint, service), fqdn)
        _add(names, fqdn, 'A', endpoint['ip'])
        _add(names, own, 'A', endpoint['ip'])
        _add(names, _reverse(endpoint['ip']), 'PTR', own)
        for port in ports:
            target_port = endpoint['ports'].get(port['name'], port['target_port'])
            _add(names, _srv_name(port, fqdn), 'SRV',
                 {'priority': 0, 'weight': weight, 'port': target_port, 'target': own})


def _endpoint_label(endpoint, service):
    """The endpoint's hostname when its pod's subdomain names this Service
    (as the endpoints controller sets it), else its address in dashes (the
    spec's system-assigned identifier, CoreDNS's choice)."""
    if endpoint.get('hostname') and endpoint.get('subdomain') == service['name']:
        return endpoint['hostname'].lower()
    return endpoint['ip'].replace('.', '-')


def _named(service):
    """Ports with a name: unnamed ports have no SRV record."""
    return [p for p in service['ports'] if p.get('name')]


def _srv_name(port, fqdn):
    return '_%s._%s.%s' % (port['name'].lower(), port['protocol'].lower(), fqdn)


def _reverse(address):
    return ipaddress.ip_address(address).reverse_pointer


def _reverse_zones(names):
    """The /16 reverse zones (b.a.in-addr.arpa) of the addresses named."""
    return sorted({name.split('.', 2)[2] for name in names if name.endswith('.in-addr.arpa')})


def _add(names, name, rtype, value):
    values = names.setdefault(name, {}).setdefault(rtype, [])
    if value not in values:
        values.append(value)


def _sorted(entry):
    return {rtype: sorted(values, key=_order) for rtype, values in sorted(entry.items())}


def _order(value):
    """Addresses by number; SRV by target, then port."""
    if isinstance(value, dict):
        return ('', value['target'], value['port'])
    try:
        return (ipaddress.ip_address(value).packed, '', 0)
    except ValueError:
        return (value.encode(), '', 0)
