"""A Service's endpoints, as the EndpointSlice controller picks them.

Each node finds them itself, from the cluster's pods (the plan's, with
their labels, node and container ports), the address each running pod has
and the pods that run but are not ready: the pods of the Service's
namespace that its selector matches, running and ready (or not ready, with
publishNotReadyAddresses). A port named by targetPort resolves per pod, to
the pod's container port of that name and protocol; a pod without it is no
endpoint of that port.
"""


def target_port(port, pod):
    """The pod's port number for one Service port, None when it has none."""
    target = port['target_port']
    if isinstance(target, int):
        return target
    for declared in pod.get('ports') or ():
        if declared.get('name') == target and declared.get('protocol', 'TCP') == port['protocol']:
            return declared['containerPort']
    return None


def port_key(port):
    """What names a Service port: its name, else its number."""
    return port['name'] or str(port['port'])


def of_service(service, pods, running, unready, index=None):
    """[{pod, ip, node, hostname, subdomain, ports: {port key: target port}}],
    sorted by pod, of one Service (a plan's dict). index: by_label(pods),
    which resolve() builds once for every Service."""
    selector = service['selector']
    if selector is None:
        return []
    found = []
    for pod in _selected(service['namespace'], selector, pods, index or by_label(pods)):
        key = '%s/%s' % (pod['namespace'], pod['name'])
        if not running.get(key) or (key in unready and not service['publish_not_ready']):
            continue
        ports = {port_key(p): target_port(p, pod) for p in service['ports']}
        found.append({'pod': key, 'ip': running[key], 'node': pod['node'],
                      'hostname': pod.get('hostname') or pod['name'], 'subdomain': pod.get('subdomain'),
                      'ports': {k: v for k, v in ports.items() if v is not None}})
    return sorted(found, key=lambda e: e['pod'])


def by_label(pods):
    """{(namespace, label, value): [pod index]} and {namespace: [pod index]}:
    a selector's pods are then the intersection of its labels' lists, not a
    walk over every pod for every Service (1,000 of each took 1.5 s a node)."""
    labelled, spaced = {}, {}
    for number, pod in enumerate(pods):
        spaced.setdefault(pod['namespace'], []).append(number)
        for label, value in (pod.get('labels') or {}).items():
            labelled.setdefault((pod['namespace'], label, value), []).append(number)
    return labelled, spaced


def _selected(namespace, selector, pods, index):
    labelled, spaced = index
    chosen = None
    for label, value in selector.items():
        these = set(labelled.get((namespace, label, value), ()))
        chosen = these if chosen is None else chosen & these
    numbers = chosen if chosen is not None else spaced.get(namespace, ())  # {} selects the namespace
    return [pods[n] for n in sorted(numbers)]


def resolve(services, pods, running, unready):
    """{service key: endpoints} of every Service."""
    unready, index = set(unready), by_label(pods)
    return {'%(namespace)s/%(name)s' % s: of_service(s, pods, running, unready, index) for s in services}
