"""Reachability matrices as the Kubernetes netpol e2e tests keep them.

podnet_probe tries every (from pod, to pod, port, protocol) on the nodes and
returns one cell each; this module, on the controller, gathers the cells of
all nodes into one Matrix per (port, protocol), prints it as the e2e truth
table (rows are sources, columns targets; `.` allowed, `X` denied, `?` not
decided), stores it as JSON and compares it with an expectation cell by
cell. Pure: no sockets, no files, no root.

A matrix is named `<PROTOCOL>/<port>` (`TCP/80`) in tables and messages.
Its rows are the source pods; its columns the target pods and, with
probe_services, the Service ports of that port and protocol
(`svc <namespace>/<name>:<port>`, servicetargets.py).
"""
import json
import re
from dataclasses import dataclass, field

from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.explain import servicetargets

PROTOCOLS = ('TCP', 'UDP', 'SCTP')
MARKS = {True: '.', False: 'X', None: '?'}
NOT_PROBED = 'not probed'
# What a probe met when the target pod's own stack answered that nothing
# listens (a TCP reset, an ICMP port unreachable). podnet drops the packets
# a policy denies and never rejects them, so the network let this one through.
REFUSED = 'refused'
REFUSED_WHY = 'refused: the pod was reached, nothing listens on the port'
NOT_IN_RECORD = 'not in the policy record'
POD_IN_REASON = re.compile(r' of [^ :;]+:')  # `ingress of x/a:` -> `ingress:`


def matrix_name(protocol, port):
    return '%s/%d' % (protocol, port)


def verdict(allowed, reason=None):
    """A cell in words: allowed, denied, or why it was not decided."""
    if allowed is None:
        return reason or NOT_PROBED
    return 'allowed' if allowed else 'denied'


@dataclass
class Matrix:
    """One (port, protocol): allowed[from][to] is True, False or None (not
    decided: not probed, or the protocol unsupported); reasons[from][to]
    says why: the probe's reason for a cell it could not decide, or in a
    model's matrix the policy model's reason for its verdict."""
    port: int
    protocol: str
    pods: list  # sorted pod keys, both the rows and the columns
    ips: dict  # pod key -> IP
    allowed: dict
    reasons: dict = field(default_factory=dict)
    targets: list = None  # the columns when they are not the pods: Service columns, sorted after the pods

    @property
    def name(self):
        return matrix_name(self.protocol, self.port)

    @property
    def columns(self):
        return self.pods if self.targets is None else self.targets

    def cell(self, source, target):
        return self.allowed.get(source, {}).get(target)

    def reason(self, source, target):
        return self.reasons.get(source, {}).get(target)

    def table(self):
        """The e2e truth table: the name, then `-` and the targets, then per
        source its key and one mark per target, tab-separated."""
        lines = [self.name, '\t'.join(['-'] + self.columns)]
        for source in self.pods:
            lines.append('\t'.join([source] + [MARKS[self.cell(source, t)] for t in self.columns]))
        undecided = sorted({verdict(None, self.reason(s, t)) for s in self.pods
                            for t in self.columns if self.cell(s, t) is None})
        if undecided:
            lines.append('?: ' + '; '.join(undecided))
        return lines

    def as_dict(self):
        found = {'port': self.port, 'protocol': self.protocol, 'pods': list(self.pods),
                 'ips': dict(self.ips),
                 'allowed': {s: {t: self.cell(s, t) for t in self.columns} for s in self.pods}}
        if self.targets is not None:
            found['targets'] = list(self.targets)
        return found


def _empty(port, protocol, pods, targets=None):
    keys = sorted(pods)
    return Matrix(port, protocol, keys, {k: pods[k] for k in keys},
                  {s: dict.fromkeys(keys if targets is None else targets) for s in keys}, {}, targets)


def build(results, pods):
    """[Matrix] sorted by (port, protocol) from probe cells
    ({from, to, port, protocol, allowed, reason}) and {pod key: IP}.
    A pod met only in the cells is added with no IP; a cell no probe
    returned stays None. A Service target is a column of its own port's
    matrix only, never a row."""
    pods = dict(pods)
    for cell in results:
        for key in (cell['from'], cell['to']):
            if not servicetargets.is_service(key):
                pods.setdefault(key, None)
    matrices = {}
    for index, targets in sorted(_columns(results, pods).items()):
        matrices[index] = _empty(*index, pods, targets)
    for cell in results:
        matrix = matrices[(int(cell['port']), cell['protocol'])]
        matrix.allowed[cell['from']][cell['to']] = cell['allowed']
        if cell['allowed'] is not True and cell.get('reason'):
            matrix.reasons.setdefault(cell['from'], {})[cell['to']] = cell['reason']
    return [matrices[index] for index in sorted(matrices)]


def _columns(results, pods):
    """{(port, protocol): the matrix's columns, None when they are the
    pods}: with Service targets, the pods (when probed on that port), then
    the Services, sorted."""
    services, probed_pods = {}, set()
    for cell in results:
        index = (int(cell['port']), cell['protocol'])
        services.setdefault(index, set())
        if servicetargets.is_service(cell['to']):
            services[index].add(cell['to'])
        else:
            probed_pods.add(index)
    return {index: (sorted(pods) if index in probed_pods else []) + sorted(found) if found else None
            for index, found in services.items()}


def table(matrices, model=None):
    """The truth tables of all matrices, a blank line between two; with the
    model's matrices, each table is followed by why its cells are denied."""
    models = {m.name: m for m in model or ()}
    lines = []
    for matrix in matrices:
        lines += ([''] if lines else []) + matrix.table()
        if matrix.name in models:
            lines += denial_reasons(matrix, models[matrix.name])
            if any(servicetargets.is_service(t) for t in matrix.columns):
                lines.append(servicetargets.RULE)
    return lines


def reached(matrices):
    """The matrices as the network decided them, to hold against the policy
    model: a refused cell is allowed (the e2e truth table, like upstream,
    counts it denied)."""
    seen = []
    for matrix in matrices:
        allowed = {s: {t: True if matrix.reason(s, t) == REFUSED else cell for t, cell in row.items()}
                   for s, row in matrix.allowed.items()}
        seen.append(Matrix(matrix.port, matrix.protocol, matrix.pods, matrix.ips, allowed, matrix.reasons,
                           matrix.targets))
    return seen


def denial_reasons(observed, model):
    """`X <why>: <cells>` for the denied cells of observed, grouped by the
    model's reason with the pod left out (`ingress: isolated by x/deny, no
    rule allows: y/a->x/a y/b->x/a`); a denial the model does not explain
    says so."""
    groups = {}
    for source in observed.pods:
        for target in observed.columns:
            if observed.cell(source, target) is False:
                why = denial_reason(observed, model, source, target)
                groups.setdefault(POD_IN_REASON.sub(':', why), []).append('%s->%s' % (source, target))
    return ['X %s: %s' % (why, ' '.join(cells)) for why, cells in sorted(groups.items())]


def denial_reason(observed, model, source, target):
    """Why the kernel denied source -> target, in the policy model's words."""
    if model.cell(source, target) is False:
        return model.reason(source, target)
    if model.cell(source, target) is None and servicetargets.is_service(target):
        return model.reason(source, target)  # no endpoints, or some allowed: the model does not judge
    if observed.reason(source, target) == REFUSED:
        return REFUSED_WHY
    return 'the policy model allows it (see the differences)'


def cell_reasons(observed, model=None):
    """{from: {to: why}} of the cells observed did not allow: the probe's
    reason for an undecided cell, the model's for a denied one."""
    found = {}
    for source in observed.pods:
        for target in observed.columns:
            seen = observed.cell(source, target)
            if seen is None:
                why = verdict(None, observed.reason(source, target))
            elif seen is False and model is not None:
                why = denial_reason(observed, model, source, target)
            else:
                continue
            found.setdefault(source, {})[target] = why
    return found


def model_matrices(observed, source, services=None):
    """The matrices the policy model computes (netpol.decide) for the pods,
    ports and protocols of observed, every cell with its reason. source is a
    node's policy record {policies, pods, namespaces} (policy_source); a pod
    it does not hold stays undecided. A Service column is judged at its
    endpoints (servicetargets.model_cell), from services, a node's
    podnet_facts `services`."""
    from ansible.module_utils.podnet.policy import netpol
    policies = [netpol.parse_policy(raw) for raw in source['policies']]
    cluster = netpol.Cluster(source['pods'], source['namespaces'])
    pods = {'%(namespace)s/%(name)s' % pod: pod for pod in source['pods']}

    def decide(src, dst, port, protocol):
        if src not in pods or dst not in pods:
            return None
        return netpol.decide(pods[src], pods[dst], port, protocol, cluster, policies)
    found = []
    for matrix in observed:
        model = _empty(matrix.port, matrix.protocol, matrix.ips, matrix.targets)
        for src in matrix.pods:
            for dst in matrix.columns:
                if servicetargets.is_service(dst):
                    allowed, why = servicetargets.model_cell(decide, src, services, dst, matrix.protocol)
                else:
                    decision = decide(src, dst, matrix.port, matrix.protocol)
                    allowed, why = (decision.allowed, decision.reason) if decision else (None, NOT_IN_RECORD)
                model.allowed[src][dst] = allowed
                model.reasons.setdefault(src, {})[dst] = why
        found.append(model)
    return found


def dumps(matrices, model=None):
    """The JSON podnet_probe_report writes and reads back as an expectation;
    with the model's matrices, `why` says why each cell not allowed is so."""
    models = {m.name: m for m in model or ()}
    items = []
    for matrix in matrices:
        item = matrix.as_dict()
        why = cell_reasons(matrix, models.get(matrix.name))
        if why:
            item['why'] = why
        items.append(item)
    return json.dumps(items, indent=2, sort_keys=True) + '\n'


def compare(expected, observed):
    """Every cell where observed differs from expected, as
    `TCP/80 x/a -> y/b: expected allowed, got denied`. Only the matrices,
    pods and cells of the expectation count; a null expected cell is not
    compared; what was not probed differs from any true or false."""
    found = {(m.port, m.protocol): m for m in observed}
    differences = []
    for want in expected:
        got = found.get((want.port, want.protocol))
        for source in sorted(want.allowed):
            for target in sorted(want.allowed[source]):
                wanted = want.allowed[source][target]
                seen = got.cell(source, target) if got else None
                if wanted is None or seen == wanted:
                    continue
                why = got.reason(source, target) if got else None
                because = want.reason(source, target)
                differences.append('%s %s -> %s: expected %s%s, got %s' % (
                    want.name, source, target, verdict(wanted),
                    ' (%s)' % because if because else '', verdict(seen, why)))
    return differences


def summary(matrices):
    """{name: {allowed: n, denied: n, undecided: n}} of each matrix."""
    counts = {}
    for matrix in matrices:
        cells = [matrix.cell(s, t) for s in matrix.pods for t in matrix.columns]
        counts[matrix.name] = {'allowed': cells.count(True), 'denied': cells.count(False),
                               'undecided': cells.count(None)}
    return counts


# -- reading an expectation ------------------------------------------------

def loads(text, where):
    """[Matrix] from the JSON dumps() writes (one object or a list of them),
    each field checked; `where` names the file in errors."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise SpecError(where, 'invalid JSON: %s' % exc) from None
    items = [raw] if isinstance(raw, dict) else raw
    if not isinstance(items, list) or not items:
        raise SpecError(where, 'must be a list of {port, protocol, pods, ips, allowed}')
    matrices, seen = [], set()
    for index, item in enumerate(items):
        matrix = _matrix(item, '%s [%d]' % (where, index))
        if (matrix.port, matrix.protocol) in seen:
            raise SpecError('%s [%d]' % (where, index), '%s is given twice' % matrix.name)
        seen.add((matrix.port, matrix.protocol))
        matrices.append(matrix)
    return matrices


def _matrix(item, where):
    if not isinstance(item, dict):
        raise SpecError(where, 'must be an object {port, protocol, pods, ips, allowed}')
    port, protocol = item.get('port'), item.get('protocol')
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise SpecError(where, 'port: %r must be an integer from 1 to 65535' % (port,))
    if protocol not in PROTOCOLS:
        raise SpecError(where, 'protocol: %r must be one of %s' % (protocol, ', '.join(PROTOCOLS)))
    where = '%s %s' % (where, matrix_name(protocol, port))
    allowed = item.get('allowed')
    if not isinstance(allowed, dict) or not all(isinstance(v, dict) for v in allowed.values()):
        raise SpecError(where, 'allowed: must map each source pod to {target pod: true|false|null}')
    for source, row in allowed.items():
        for target, value in row.items():
            if value not in (True, False, None):
                raise SpecError(where, 'allowed[%s][%s]: %r must be true, false or null'
                                % (source, target, value))
    ips = item.get('ips') or {}
    if not isinstance(ips, dict):
        raise SpecError(where, 'ips: must map pod keys to addresses')
    columns = {t for row in allowed.values() for t in row}
    services = sorted(t for t in columns if servicetargets.is_service(t))
    pod_columns = columns - set(services)
    keys = set(allowed) | pod_columns
    targets = (sorted(keys) if pod_columns else []) + services if services else None
    return Matrix(port, protocol, sorted(keys), {k: ips.get(k) for k in sorted(keys)},
                  {s: dict(row) for s, row in allowed.items()}, {}, targets)
