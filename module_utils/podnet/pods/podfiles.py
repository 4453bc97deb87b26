"""The files the kubelet writes for each pod, which every container sees
read-only over its /etc/resolv.conf and /etc/hosts: made from the pod's
dnsPolicy, dnsConfig, hostname and subdomain as the kubelet makes them
(pkg/kubelet/network/dns GetPodDNS, kubelet_pods managedHostsFileContent),
and laid out as containerd writes resolv.conf. They live in the pod's
folder, in `.etc` (no container name starts with a dot), and go with it.

dnsPolicy, as the kubelet reads it:
- ClusterFirst (and ClusterFirstWithHostNet; podnet has no hostNetwork):
  the cluster DNS Service as the only nameserver, the search path
  `<ns>.svc.<domain> svc.<domain> <domain>` then the node's own search
  domains, `options ndots:5`. Without cluster DNS, Default.
- Default: the node's resolv.conf (nameservers, search, options).
- None: nothing but the dnsConfig.
A dnsConfig is then merged in: its nameservers and searches appended
(duplicates dropped), its options replacing those of the same name. The
result is cut to 3 nameservers and 32 search domains of 2048 characters.
"""
import os

from ansible.module_utils.podnet.core.statefile import write_atomic

NODE_RESOLV_CONF = '/etc/resolv.conf'
FOLDER = '.etc'
RESOLV_CONF, HOSTS = '/etc/resolv.conf', '/etc/hosts'
CLUSTER_OPTIONS = (('ndots', '5'),)
MAX_NAMESERVERS, MAX_SEARCHES, MAX_SEARCH_CHARS = 3, 32, 2048
# A pod the plan gave no DNS settings: ClusterFirst on a cluster without DNS.
NO_CLUSTER_DNS = {'policy': 'ClusterFirst', 'nameservers': [], 'searches': [], 'options': [], 'cluster_dns': None,
                  'domain': 'cluster.local'}
HOSTS_HEADER = ('# Kubernetes-managed hosts file.\n'
                '127.0.0.1\tlocalhost\n'
                '::1\tlocalhost ip6-localhost ip6-loopback\n'
                'fe00::0\tip6-localnet\n'
                'fe00::0\tip6-mcastprefix\n'
                'fe00::1\tip6-allnodes\n'
                'fe00::2\tip6-allrouters\n')


def parse_resolv_conf(text):
    """(nameservers, searches, options) of a resolv.conf, as the kubelet
    reads the node's: the last `search` line counts, final dots dropped."""
    nameservers, searches, options = [], [], []
    for line in text.splitlines():
        fields = line.split()
        if not fields or line[0] in '#;':
            continue
        if fields[0] == 'nameserver' and len(fields) > 1:
            nameservers.append(fields[1])
        elif fields[0] == 'search':
            searches = [s.rstrip('.') for s in fields[1:] if s != '.']
        elif fields[0] == 'options':
            options = _merged(options, [_option(text) for text in fields[1:]])
    return nameservers, searches, options


def pod_dns(dns, namespace, node_text):
    """(nameservers, searches, options) of a pod; dns: the plan's (poddns.py
    PodDns.for_node), node_text: the node's resolv.conf."""
    nameservers, searches, options = parse_resolv_conf(node_text)
    policy = 'ClusterFirst' if dns['policy'] == 'ClusterFirstWithHostNet' else dns['policy']
    if policy == 'ClusterFirst' and dns.get('cluster_dns'):
        domain = dns['domain']
        cluster = ['%s.svc.%s' % (namespace, domain), 'svc.' + domain, domain]
        nameservers, searches, options = [dns['cluster_dns']], _unique(cluster + searches), list(CLUSTER_OPTIONS)
    elif policy == 'None':
        nameservers, searches, options = [], [], []
    nameservers = _unique(nameservers + dns['nameservers'])[:MAX_NAMESERVERS]
    searches = _fitting(_unique(searches + dns['searches']))
    return nameservers, searches, _merged(options, [tuple(option) for option in dns['options']])


def resolv_conf(dns, namespace, node_text):
    """The pod's resolv.conf text, laid out as containerd writes it."""
    nameservers, searches, options = pod_dns(dns, namespace, node_text)
    lines = ['search ' + ' '.join(searches)] if searches else []
    lines += ['nameserver ' + address for address in nameservers]
    if options:
        lines.append('options ' + ' '.join(name if value is None else '%s:%s' % (name, value)
                                           for name, value in options))
    return ''.join(line + '\n' for line in lines)


def hosts(hostname, subdomain, namespace, ip, domain):
    """The pod's /etc/hosts: localhost, then its address with its FQDN
    (`<hostname>.<subdomain>.<ns>.svc.<domain>`, with a subdomain) and its
    hostname."""
    names = ('%s.%s.%s.svc.%s\t%s' % (hostname, subdomain, namespace, domain, hostname) if subdomain
             else hostname)
    return HOSTS_HEADER + '%s\t%s\n' % (ip, names)


def write(folder, pod, ip, hostname, node_resolv=NODE_RESOLV_CONF):
    """Write the pod's files into its folder; [(file, where containers see it)]."""
    dns = pod.get('dns') or NO_CLUSTER_DNS
    try:
        with open(node_resolv) as f:
            node_text = f.read()
    except FileNotFoundError:
        node_text = ''
    os.makedirs(os.path.join(folder, FOLDER), mode=0o755, exist_ok=True)
    texts = {RESOLV_CONF: resolv_conf(dns, pod['namespace'], node_text),
             HOSTS: hosts(hostname, pod.get('subdomain'), pod['namespace'], ip, dns['domain'])}
    for target, text in texts.items():
        write_atomic(source(folder, target), text, mode=0o644)
    return binds(folder)


def binds(folder):
    return [(source(folder, target), target) for target in (RESOLV_CONF, HOSTS)]


def source(folder, target):
    return os.path.join(folder, FOLDER, os.path.basename(target))


def _option(text):
    name, value = text.split(':', 1) if ':' in text else (text, '')
    return (name, value) if value else (name, None)


def _merged(options, new):
    """options with new ones appended, a new one replacing an old of its name."""
    names = [option[0] for option in new]
    return [option for option in options if option[0] not in names] + list(new)


def _unique(items):
    return list(dict.fromkeys(items))


def _fitting(searches):
    """The first search domains that fit the kubelet's limits."""
    kept = []
    for search in searches[:MAX_SEARCHES]:
        if len(' '.join(kept + [search])) > MAX_SEARCH_CHARS:
            break
        kept.append(search)
    return kept
