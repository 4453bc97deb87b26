"""The cluster as a Graphviz picture, drawn from the nodes' live facts
(podnet_facts), so it shows drift as it is: racks with their switch, the
fabric router and the outside host; each node with its underlay address,
cni0, flannel.1 and the tunnels its FDB holds; each pod with its IP, veth
and containers. A path from explain (its hops) is drawn over it in colour.

dot() is pure: facts in, DOT text out.
"""
import re

from ansible.module_utils.podnet.core import names

PATH_COLOUR = '#d62728'
FONT = 'Helvetica'


def _escape(text):
    return str(text).replace('\\', '\\\\').replace('"', '\\"')


def quote(text):
    return '"%s"' % _escape(text)


def _ident(*parts):
    return quote(':'.join(parts))


def _label(*lines):
    """A multi-line label: each line escaped, joined by DOT's \\n."""
    return '"%s"' % '\\n'.join(_escape(line) for line in lines if line not in (None, ''))


class Picture:
    """Nodes and edges collected, then written as one DOT digraph."""

    def __init__(self, title):
        self.title = title
        self.lines = []
        self.edges = []

    def node(self, ident, label, shape='box', **attrs):
        extra = ''.join(', %s=%s' % (k, quote(v)) for k, v in sorted(attrs.items()))
        self.lines.append('    %s [label=%s, shape=%s%s];' % (ident, label, shape, extra))

    def edge(self, a, b, **attrs):
        self.edges.append((a, b, attrs))

    def text(self, path_ids):
        on_path = set(zip(path_ids, path_ids[1:])) | set(zip(path_ids[1:], path_ids))
        out = ['digraph podnet {',
               '    graph [label=%s, labelloc=t, fontname=%s, rankdir=TB, compound=true];'
               % (quote(self.title), quote(FONT)),
               '    node [fontname=%s, fontsize=10, style=filled, fillcolor="#ffffff"];' % quote(FONT),
               '    edge [arrowhead=none, fontname=%s, fontsize=9];' % quote(FONT)]
        out += self.lines
        drawn = set()
        for a, b, attrs in self.edges:
            if (a, b) in on_path:
                attrs = dict(attrs, color=PATH_COLOUR, penwidth='3')
                drawn.add((a, b))
                drawn.add((b, a))
            out.append('    %s -> %s%s;' % (a, b, _attrs(attrs)))
        for a, b in zip(path_ids, path_ids[1:]):
            if (a, b) not in drawn:  # a hop the topology has no line for (routed inside a node)
                out.append('    %s -> %s [color="%s", penwidth=3, style=dashed, constraint=false];'
                           % (a, b, PATH_COLOUR))
        for ident in path_ids:
            out.append('    %s [color="%s", penwidth=3];' % (ident, PATH_COLOUR))
        return '\n'.join(out + ['}']) + '\n'


def _attrs(attrs):
    return ' [%s]' % ', '.join('%s=%s' % (k, quote(v)) for k, v in sorted(attrs.items())) if attrs else ''


def dot(nodes, racks, lab=None, path=None, title='podnet cluster'):
    """DOT of the cluster. nodes: {node: podnet facts}; racks: {node:
    rack}; lab: {racks: {rack: {subnet, gateway}}, outside: {host_ip}} or
    None; path: explain's hops, drawn in colour."""
    picture = Picture(title)
    by_rack = {}
    for name in sorted(nodes):
        by_rack.setdefault(racks.get(name) or 'underlay', []).append(name)
    underlay_owner = {(f.get('underlay') or {}).get('underlay_ip'): n for n, f in nodes.items()}
    _fabric(picture, by_rack, lab)
    for rack, members in sorted(by_rack.items()):
        for name in members:
            _node(picture, name, nodes[name], rack)
    directed = {(name, underlay_owner[remote]) for name, facts in nodes.items()
                for remote in (facts.get('fdb') or {}).values()
                if underlay_owner.get(remote) not in (None, name)}
    for a, b in sorted({tuple(sorted(pair)) for pair in directed}):
        both = (a, b) in directed and (b, a) in directed
        one_way = a if (a, b) in directed else b
        picture.edge(_ident(a, 'flannel.1'), _ident(b, 'flannel.1'), style='dashed', constraint='false',
                     color='#7f7f7f' if both else '#ff7f0e',
                     label='vxlan' if both else 'vxlan, only %s has the FDB entry' % one_way)
    return picture.text(path_ids(path or [], nodes))


def _fabric(picture, by_rack, lab):
    racks = (lab or {}).get('racks', {})
    picture.lines.append('    subgraph cluster_fabric { label="fabric"; style=rounded; color="#9467bd";')
    for rack in sorted(by_rack):
        subnet = racks.get(rack, {})
        picture.node(_ident('rack', rack), _label('%s switch' % rack, subnet.get('gateway'),
                                                  subnet.get('subnet')), shape='box3d', fillcolor='#e6e0f3')
    picture.node(_ident('router'), _label('router'), shape='oval', fillcolor='#e6e0f3')
    picture.lines.append('    }')
    for rack in sorted(by_rack):
        picture.edge(_ident('router'), _ident('rack', rack))
    outside = ((lab or {}).get('outside') or {}).get('host_ip')
    if outside:
        picture.node(_ident('outside'), _label('outside host', outside), shape='oval', fillcolor='#f0f0f0')
        picture.edge(_ident('router'), _ident('outside'))


def _node(picture, name, facts, rack):
    underlay = facts.get('underlay') or {}
    vtep = facts.get('vtep') or {}
    picture.lines.append('    subgraph %s { label=%s; style=rounded; color="#1f77b4";' % (
        quote('cluster_' + name), _label(name, 'pod CIDR %s' % facts.get('pod_cidr'),
                                         facts.get('backend'))))
    picture.node(_ident(name, 'eth0'), _label(underlay.get('underlay_ifname', 'underlay'), '%s/%s' % (
        underlay.get('underlay_ip'), underlay.get('underlay_prefixlen')), 'mtu %s' % underlay.get('underlay_mtu')),
        fillcolor='#dbe9f6')
    picture.node(_ident(name, 'cni0'), _label('cni0', _gateway(facts.get('pod_cidr'))),
                 fillcolor='#dbe9f6')
    if vtep:
        picture.node(_ident(name, 'flannel.1'), _label('flannel.1', vtep.get('mac'), 'VNI %s' % vtep.get('vni')),
                     fillcolor='#dbe9f6')
    for key, pod in sorted((facts.get('pods') or {}).items()):
        picture.node(_ident(name, pod['veth']), _label(pod['veth']), shape='cds', fillcolor='#fdf2d0')
        picture.node(_ident('pod', key), _label(key, 'eth0 %s' % pod['ip'], ', '.join(
            sorted(pod.get('containers') or ()))), shape='component', fillcolor='#fff7e0')
    picture.lines.append('    }')
    for key, pod in sorted((facts.get('pods') or {}).items()):
        picture.edge(_ident('pod', key), _ident(name, pod['veth']))
        picture.edge(_ident(name, pod['veth']), _ident(name, 'cni0'))
    if vtep:
        picture.edge(_ident(name, 'cni0'), _ident(name, 'flannel.1'), style='dotted')
        picture.edge(_ident(name, 'flannel.1'), _ident(name, 'eth0'), style='dotted')
    else:
        picture.edge(_ident(name, 'cni0'), _ident(name, 'eth0'), style='dotted')
    picture.edge(_ident(name, 'eth0'), _ident('rack', rack))


def _gateway(cidr):
    if not cidr:
        return None
    network, length = cidr.split('/')
    return '%s.1/%s' % (network.rsplit('.', 1)[0], length)


HOP = re.compile(r'^(?P<owner>\S+) (?P<what>\S+)$')


def path_ids(hops, nodes):
    """The picture's ids along explain's hops, in order, each once in a row."""
    veths = {(n, p['veth']) for n, f in nodes.items() for p in (f.get('pods') or {}).values()}
    ids = []
    for item in hops:
        ident = _hop_ident(item['at'], nodes, veths)
        if ident and (not ids or ids[-1] != ident):
            ids.append(ident)
    return ids


def _hop_ident(at, nodes, veths):
    match = HOP.match(at)
    if not match:
        return None
    owner, what = match.group('owner'), match.group('what')
    if '/' in owner and what in ('eth0', 'lo'):
        return _ident('pod', owner)
    if owner in nodes and what in ('cni0', 'flannel.1'):
        return _ident(owner, what)
    if owner in nodes and (what in ('underlay', 'eth0') or
                           what == (nodes[owner].get('underlay') or {}).get('underlay_ifname')):
        return _ident(owner, 'eth0')
    if owner in nodes and (owner, what) in veths:
        return _ident(owner, what)
    if owner == 'fabric' and what.startswith('br-'):
        return _ident('rack', what[3:])
    port_of = {names.fabric_port(n): n for n in nodes}
    if owner == 'fabric' and what in port_of:  # the switch port of a node: its underlay NIC
        return _ident(port_of[what], 'eth0')
    if owner == 'fabric' and what == 'router':
        return _ident('router')
    return None
