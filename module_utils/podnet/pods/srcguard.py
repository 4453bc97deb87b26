"""Source guard: a pod sends only from its own MAC and IPv4 address.

One bridge-family table on the node checks every frame a pod's veth hands
to cni0, before routing and before NetworkPolicy see it: a pod that changes
its address (it may keep NET_ADMIN) or forges ARP is dropped at its port.
A verdict map jumps from the port to the pod's own chain, so the cost per
frame does not grow with the number of pods; a port with no pod chain is
dropped whole, and so is anything but IPv4 and ARP (the cluster is IPv4: a pod
has only the link-local IPv6 address the kernel gives every interface, and
its IPv6 goes nowhere: router advertisements and neighbour discovery too).

"A port with no pod chain": the bridge family's hooks see the ports of
every bridge on the node, and this kernel cannot tell which bridge a frame
came in on (`meta ibrname` needs nft_meta_bridge, which it lacks). So on a
node whose only bridge is cni0 every other port is dropped, a foreign port
put on cni0 included (the pods module also takes it off); on a node with
bridges of its own (a VM running other software), only ports named veth*,
so that their traffic is left alone.
"""
FAMILY, TABLE = 'bridge', 'podnet-guard'
VETHS = 'veth*'


def _iifname():
    return {'meta': {'key': 'iifname'}}


def _cmp(left, op, right):
    return {'match': {'op': op, 'left': left, 'right': right}}


def _field(protocol, field):
    return {'payload': {'protocol': protocol, 'field': field}}


def ports(pods, attachments=()):
    """The ports the guard lets send, one per veth, sorted: every pod's, and
    every attachment podnet-cni made (ipam.attachment_ports) that is no
    pod's. A pod a podnet-cni chain wired is both, its record and its IPAM
    file naming the same veth: it is its record's (two chains of one name
    would make the table differ from what nft lists, on every run)."""
    found = {p['veth']: p for p in attachments}
    found.update((p['veth'], p) for p in pods)
    return [found[veth] for veth in sorted(found)]


def ruleset(pods, sole_bridge=True, attachments=()):
    """(chains, rules) for pods and attachments given as [{'veth', 'mac',
    'ip'}] (ports()); sole_bridge: cni0 is the node's only bridge."""
    pods = ports(pods, attachments)
    chains = [{'name': 'ports', 'type': 'filter', 'hook': 'prerouting', 'prio': -300,
               'policy': 'accept'}]
    rules = []
    if pods:
        jumps = [[p['veth'], {'jump': {'target': p['veth']}}] for p in pods]
        rules.append(('ports', [{'vmap': {'key': _iifname(), 'data': {'set': jumps}}}]))
    unknown = [] if sole_bridge else [_cmp(_iifname(), '==', VETHS)]
    rules.append(('ports', unknown + [{'drop': None}]))
    for pod in pods:
        chains.append({'name': pod['veth']})
        rules += [(pod['veth'], [_cmp(_field('ether', 'saddr'), '!=', pod['mac']), {'drop': None}]),
                  (pod['veth'], [_cmp(_field('ip', 'saddr'), '==', pod['ip']), {'accept': None}]),
                  (pod['veth'], [_cmp(_field('arp', 'saddr ip'), '==', pod['ip']), {'accept': None}]),
                  (pod['veth'], [{'drop': None}])]
    return chains, rules
