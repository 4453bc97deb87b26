"""A container's cpu and memory, read as the API server reads them.

Quantities follow k8s.io/apimachinery's resource.Quantity (128Mi, 1G, 500m,
1e3); `resources` of a container is validated and defaulted as the API
server does (a missing request takes its limit, a request above its limit
is refused), and the pod's QoS class is the kubelet's. Memory is kept in
bytes and cpu in millicores, both rounded up as Kubernetes rounds them, so
the node hands the runtime the numbers a kubelet would.
"""
import decimal
import re
from collections import Counter
from dataclasses import dataclass

from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.kernel.cgroups import CPU_PERIOD_US
from ansible.module_utils.podnet.core import k8s

# An optional sign, a number (1, 1.5, 1. or .5), then one suffix: binary
# (Ki..Ei), decimal (n u m k M G T P E, or none) or an exponent (e3, E-2;
# 10 digits at most, which keeps the arithmetic finite).
QUANTITY = re.compile(r'(?P<number>[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))'
                      r'(?P<suffix>[KMGTPE]i|[eE][+-]?[0-9]{1,10}|[numkMGTPE])?')
BINARY = {'Ki': 10, 'Mi': 20, 'Gi': 30, 'Ti': 40, 'Pi': 50, 'Ei': 60}  # powers of 2
DECIMAL = {'n': -9, 'u': -6, 'm': -3, '': 0, 'k': 3, 'M': 6, 'G': 9, 'T': 12, 'P': 15, 'E': 18}
QUANTITY_EXAMPLES = 'such as 128Mi, 1G, 500m'
LARGEST = 2 ** 63 - 1  # an int64, as the runtime takes bytes and cpu shares
UNITS = {'memory': 1, 'cpu': 1000}  # bytes, millicores
# The largest CPU limit the kernel takes: a CFS quota of 2^44 - 1 us per
# period (cgroups.py writes it); above it the write fails (EINVAL).
CPU_MAX_MILLICORES = ((1 << 44) - 1) * 1000 // CPU_PERIOD_US

# The names of limits and requests: podnet reads cpu and memory; storage,
# hugepages and extended resources (a vendor's domain/name) change nothing
# in podnet, and are accepted as a manifest for a cluster may carry them.
READ = ('cpu', 'memory')
IGNORED = ('ephemeral-storage',)
HUGEPAGES = 'hugepages-'  # and a page size: hugepages-2Mi
KNOWN_TEXT = 'cpu, memory, ephemeral-storage, hugepages-<size>, or an extended resource ' \
             'such as nvidia.com/gpu'
# runc needs more than this to start a container (Docker refuses less since
# 2020, moby#41168): under a lower limit the start fails or is OOM-killed.
MEMORY_LIMIT_MIN = 6 << 20


@dataclass(frozen=True)
class ContainerResources:
    """Memory in bytes and cpu in millicores, after defaulting; None where
    the manifest sets neither the value nor (for a request) its limit.
    The field names are the keys of the cluster plan's `resources`."""
    memory_limit: object = None
    cpu_limit: object = None
    memory_request: object = None
    cpu_request: object = None


def _exact(value, at, subject):
    """The quantity as an exact Decimal, from 0 to LARGEST. YAML hands
    numbers (cpu: 1, cpu: 0.5) as int or float; the API server reads their
    text."""
    text = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    found = QUANTITY.fullmatch(text) if isinstance(text, str) else None
    if not found:
        raise SpecError(subject, '%s: %r is not a quantity (%s)' % (at, value, QUANTITY_EXAMPLES))
    suffix = found.group('suffix') or ''
    with _exact_arithmetic(len(text)):
        amount = decimal.Decimal(found.group('number'))
        if suffix in BINARY:
            amount *= 2 ** BINARY[suffix]
        else:
            amount = amount.scaleb(int(suffix[1:]) if suffix[1:] else DECIMAL[suffix])
    if amount < 0:
        raise SpecError(subject, '%s: %r must be greater than or equal to 0' % (at, value))
    if amount > LARGEST:
        raise SpecError(subject, '%s: %r is too large (at most %d)' % (at, value, LARGEST))
    return amount


def _exact_arithmetic(digits):
    """A decimal context where a number of `digits` digits, times 2**60
    or 1000, or scaled by any exponent QUANTITY takes, is neither rounded
    nor refused."""
    context = decimal.Context(prec=digits + 40, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
    return decimal.localcontext(context)


def _whole(amount, unit):
    """amount in `unit`s, rounded up to a whole one, as resource.Quantity's
    Value() and MilliValue() round (0.1m of cpu is 1m)."""
    with _exact_arithmetic(len(amount.as_tuple().digits)):
        return int((amount * unit).to_integral_value(rounding=decimal.ROUND_CEILING))


def memory_bytes(value, at, subject):
    """A memory quantity in bytes, rounded up (1.5 is 2, 1Ki is 1024, 1k is 1000)."""
    return _whole(_exact(value, at, subject), UNITS['memory'])


def millicores(value, at, subject):
    """A cpu quantity in millicores, rounded up to 1m (0.5 is 500, 0.0001 is 1)."""
    return _whole(_exact(value, at, subject), UNITS['cpu'])


def _check_name(name, at, subject):
    """A resource name podnet reads or knows to ignore; anything else is
    refused, as the API server refuses a resource it does not know."""
    if isinstance(name, str) and name.startswith(HUGEPAGES) and name != HUGEPAGES:
        _exact(name[len(HUGEPAGES):], at, subject)  # the page size, as in hugepages-2Mi
    elif not isinstance(name, str) or name not in READ + IGNORED and '/' not in name:
        raise SpecError(subject, '%s: unknown resource (known: %s)' % (at, KNOWN_TEXT))


def _amounts(raw, at, subject):
    """{cpu, memory: exact Decimal} of a limits or requests mapping; every
    name and quantity is checked, those podnet ignores then dropped."""
    if raw is not None and not isinstance(raw, dict):
        raise SpecError(subject, '%s: must be a mapping' % at)
    amounts = {}
    for name, value in (raw or {}).items():
        where = '%s.%s' % (at, name)
        _check_name(name, where, subject)
        amount = _exact(value, where, subject)
        if name in READ:
            amounts[name] = amount
    return amounts


def _check_limits(limits, requests, raw, at, subject):
    """The API server's check of requests against limits, and the memory
    floor runc needs to start a container. raw: `resources` as written."""
    for name in READ:
        if name in limits and requests[name] > limits[name]:
            raise SpecError(subject, '%s.requests.%s: %r must be less than or equal to %s limit '
                            'of %s' % (at, name, raw['requests'][name], name, raw['limits'][name]))
    for kind, amounts in (('limits', limits), ('requests', requests)):
        if 'cpu' in amounts and amounts['cpu'] * UNITS['cpu'] > CPU_MAX_MILLICORES:
            raise SpecError(subject, '%s.%s.cpu: %r is more than the kernel can give (%d cores: its CFS quota '
                            'has 44 bits of microseconds)' % (at, kind, raw[kind]['cpu'], CPU_MAX_MILLICORES // 1000))
    if 'memory' in limits and limits['memory'] < MEMORY_LIMIT_MIN:
        raise SpecError(subject, '%s.limits.memory: %r is below 6Mi, the least runc needs to '
                        'start a container (under it the start fails)'
                        % (at, raw['limits']['memory']))


def parse_resources(raw, at, subject):
    """ContainerResources of a container's `resources` (None: nothing set).
    A request not given takes its limit, as the API server defaults it.
    `claims` name DRA claims, which podnet has not: only [] is accepted."""
    raw = k8s.fields(raw, at, subject, ('limits', 'requests'), (), {'claims': []})
    limits = _amounts(raw.get('limits'), at + '.limits', subject)
    requests = dict(limits, **_amounts(raw.get('requests'), at + '.requests', subject))
    _check_limits(limits, requests, raw, at, subject)
    return ContainerResources(**{'%s_%s' % (name, kind): _whole(amounts[name], UNITS[name])
                                 for kind, amounts in (('limit', limits), ('request', requests))
                                 for name in amounts})


def qos_class(containers_resources):
    """The pod's QoS class as the kubelet computes it (GetPodQOS) from its
    containers' ContainerResources: BestEffort when no container has a cpu
    or memory request or limit above 0, Guaranteed when every container has
    both limits and the pod's summed requests equal its summed limits,
    else Burstable. It compares the rounded bytes and millicores, which
    differ from the API server's exact quantities only below 1 byte or 1m."""
    requests, limits, every_one_limited = Counter(), Counter(), True
    for resources in containers_resources:
        for name in READ:
            requests[name] += getattr(resources, name + '_request') or 0
            limits[name] += getattr(resources, name + '_limit') or 0
        every_one_limited &= bool(resources.cpu_limit and resources.memory_limit)
    requests, limits = +requests, +limits  # kubelet counts only amounts above 0
    if not requests and not limits:
        return 'BestEffort'
    return 'Guaranteed' if every_one_limited and requests == limits else 'Burstable'
