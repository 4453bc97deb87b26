"""Pod subnets of the nodes, carved from the cluster CIDR, as the
kube-controller-manager's node IPAM does: one /24 per node by default.

Pure and deterministic: the same inventory and persisted state give the same
plan. A node keeps the subnet it already has (its pods keep their addresses)
unless the inventory pins another with `podnet_pod_cidr`; new nodes take the
lowest free subnets in inventory order, so adding a node moves no other.
"""
import ipaddress

from ansible.module_utils.podnet.core.errors import SpecError

CLUSTER_FIELD = 'podnet_cluster_cidr'
NODE_FIELD = 'podnet_pod_cidr'


def _network(value, where):
    try:
        return ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        raise SpecError(where, '%r is not an IPv4 subnet (%s)' % (value, exc)) from None


def cluster_network(cluster_cidr, prefixlen=24):
    """The cluster CIDR as an IPv4Network that holds at least one node
    subnet of `prefixlen`; SpecError on podnet_cluster_cidr otherwise."""
    if isinstance(prefixlen, bool) or not isinstance(prefixlen, int) \
            or not 1 <= prefixlen <= 30:
        raise SpecError('prefixlen', '%r must be an integer from 1 to 30 (a node subnet '
                        'needs a gateway and pod addresses)' % (prefixlen,))
    cluster = _network(cluster_cidr, CLUSTER_FIELD)
    if cluster.prefixlen > prefixlen:
        raise SpecError(CLUSTER_FIELD, '%s is smaller than one /%d node subnet'
                        % (cluster, prefixlen))
    return cluster


def _explicit(cluster, nodes, explicit, prefixlen):
    """{node: IPv4Network} pinned by the inventory, each checked to be a
    node subnet of the cluster CIDR that no earlier node pinned."""
    pinned, owner = {}, {}
    for node in nodes:
        value = explicit.get(node)
        if value is None or value == '':
            continue
        where = '%s: %s' % (node, NODE_FIELD)
        subnet = _network(value, where)
        if not subnet.subnet_of(cluster):
            raise SpecError(where, '%s is outside the cluster CIDR %s (%s)'
                            % (subnet, cluster, CLUSTER_FIELD))
        if subnet.prefixlen != prefixlen:
            raise SpecError(where, '%s must be a /%d, the size of every node subnet'
                            % (subnet, prefixlen))
        if subnet in owner:
            raise SpecError(where, '%s is already the %s of %s'
                            % (subnet, NODE_FIELD, owner[subnet]))
        pinned[node], owner[subnet] = subnet, node
    return pinned


def _reusable(cluster, value, prefixlen):
    """The persisted subnet if it still fits the cluster CIDR, else None:
    after a cluster CIDR change the node is simply given a new one."""
    try:
        subnet = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError:
        return None
    if subnet.prefixlen != prefixlen or not subnet.subnet_of(cluster):
        return None
    return subnet


def allocate(cluster_cidr, node_names, existing, explicit, prefixlen=24):
    """{node: 'a.b.c.d/len'} for every node in node_names (inventory order).

    explicit: {node: cidr} from podnet_pod_cidr, always honoured (or refused).
    existing: {node: cidr or None} persisted on each node; kept while valid
    and not taken by an explicit one. Everything else gets the lowest free
    subnet, in inventory order.
    """
    cluster = cluster_network(cluster_cidr, prefixlen)
    nodes = list(dict.fromkeys(node_names))
    chosen = _explicit(cluster, nodes, explicit or {}, prefixlen)
    taken = set(chosen.values())
    for node in nodes:
        if node not in chosen and (existing or {}).get(node) is not None:
            subnet = _reusable(cluster, existing[node], prefixlen)
            if subnet is not None and subnet not in taken:
                chosen[node] = subnet
                taken.add(subnet)
    free = (s for s in cluster.subnets(new_prefix=prefixlen) if s not in taken)
    for node in nodes:
        if node not in chosen:
            chosen[node] = next(free, None)
            if chosen[node] is None:
                raise SpecError(CLUSTER_FIELD, '%s holds %d /%d node subnets, too few for '
                                '%d nodes (none left for %s)' % (
                                    cluster, 2 ** (prefixlen - cluster.prefixlen),
                                    prefixlen, len(nodes), node))
    return {node: str(chosen[node]) for node in nodes}


def gateway(cidr):
    """First host address of a node's pod subnet with its length, e.g.
    10.42.1.1/24: the address the node's bridge holds, pods route via it."""
    subnet = _network(cidr, NODE_FIELD)
    if subnet.num_addresses < 4:
        raise SpecError(NODE_FIELD, '%s has no room for a gateway and pods' % subnet)
    return '%s/%d' % (subnet.network_address + 1, subnet.prefixlen)
