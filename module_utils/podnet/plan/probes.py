"""A container's probes (livenessProbe, readinessProbe, startupProbe),
validated as the API server validates them and defaulted as it defaults
them, then planned as the node tries them (pods/probes.py).

A probe names exactly one handler: httpGet, tcpSocket, exec or grpc. Its
port is a number, or (but for grpc, as in Kubernetes) the name of a
containerPort of the same container, which the plan resolves to its
number; grpc's service defaults to '' (the server as a whole). A probe a
stand-in cannot answer (exec, HTTPS, grpc, or a port the stand-in does not
serve) is not tried, and counts as passing, with a note the run prints: the
plan marks it `skip: why`.
"""
import re

from ansible.module_utils.podnet.core import k8s
from ansible.module_utils.podnet.core.errors import SpecError

KINDS = {'livenessProbe': 'liveness', 'readinessProbe': 'readiness', 'startupProbe': 'startup'}
HANDLERS = ('httpGet', 'tcpSocket', 'exec', 'grpc')
# (field, planned key, the API server's default, which it also puts for 0)
TIMING = (('initialDelaySeconds', 'initial_delay', 0), ('timeoutSeconds', 'timeout', 1),
          ('periodSeconds', 'period', 10), ('successThreshold', 'success_threshold', 1),
          ('failureThreshold', 'failure_threshold', 3))
PROBE = (HANDLERS + tuple(t[0] for t in TIMING), ('terminationGracePeriodSeconds',))
HTTP_GET = (('port', 'path', 'scheme', 'httpHeaders'), ())
HEADER_NAME = re.compile(r"^[-!#$%&'*+.^_`|~0-9a-zA-Z]+$")  # an HTTP token
SCHEMES = ('HTTP', 'HTTPS')


def parse(raw, where, subject, ports):
    """{kind: planned probe} of a container's raw fields; where: the
    container's field path; ports: its ContainerPorts."""
    found = {}
    for field, kind in KINDS.items():
        if raw.get(field) is not None:
            found[kind] = _probe(raw[field], '%s.%s' % (where, field), subject, ports, kind)
    return found


def refuse_on_init(raw, where, subject):
    """Init containers run to completion: the API server forbids probes on them."""
    for field in KINDS:
        if raw.get(field) is not None:
            raise SpecError(subject, '%s.%s: may not be set for init containers' % (where, field))


def _probe(raw, at, subject, ports, kind):
    raw = k8s.fields(raw, at, subject, *PROBE)
    handlers = [h for h in HANDLERS if raw.get(h) is not None]
    if not handlers:
        raise SpecError(subject, '%s: must specify a handler type (%s)' % (at, ', '.join(HANDLERS)))
    if len(handlers) > 1:
        raise SpecError(subject, '%s: may not specify more than 1 handler type (%s)' % (at, ', '.join(handlers)))
    probe = dict(_timing(raw, at, subject, kind), handler=handlers[0])
    handler_at = '%s.%s' % (at, handlers[0])
    probe.update(HANDLER_PARSERS[handlers[0]](raw[handlers[0]], handler_at, subject, ports))
    return probe


def _timing(raw, at, subject, kind):
    found = {}
    for field, key, default in TIMING:
        value = raw.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise SpecError(subject, '%s.%s: %r must be an integer >= 0' % (at, field, value))
        found[key] = value or default
    if kind != 'readiness' and found['success_threshold'] != 1:
        raise SpecError(subject, '%s.successThreshold: must be 1 for a %s probe' % (at, kind))
    return found


def _port(value, at, subject, ports):
    """A port number, or the number of the container's port of that name."""
    if isinstance(value, str):
        k8s.port_name(value, at, subject)
        named = {p.name: p.container_port for p in ports if p.name}
        if value not in named:
            raise SpecError(subject, '%s: %r names no port of this container (named: %s)'
                            % (at, value, ', '.join(sorted(named)) or 'none'))
        return named[value]
    return k8s.port_number(value, at, subject)


def _http_get(raw, at, subject, ports):
    raw = k8s.fields(raw, at, subject, *HTTP_GET, neutral={'host': ''})
    path = raw.get('path') or '/'
    if not isinstance(path, str) or not path.startswith('/'):
        raise SpecError(subject, '%s.path: %r must be an absolute path' % (at, path))
    scheme = raw.get('scheme') or 'HTTP'
    if scheme not in SCHEMES:
        raise SpecError(subject, '%s.scheme: %r must be one of %s' % (at, scheme, ', '.join(SCHEMES)))
    headers = []
    for i, header in enumerate(k8s.items(raw.get('httpHeaders'), at + '.httpHeaders', subject, dict)):
        header = k8s.fields(header, '%s.httpHeaders[%d]' % (at, i), subject, ('name', 'value'))
        if not isinstance(header.get('name'), str) or not HEADER_NAME.match(header['name']):
            raise SpecError(subject, '%s.httpHeaders[%d].name: %r must be an HTTP header name'
                            % (at, i, header.get('name')))
        headers.append([header['name'], str(header.get('value') or '')])
    return {'port': _port(raw.get('port'), at + '.port', subject, ports), 'path': path, 'scheme': scheme,
            'headers': headers}


def _tcp_socket(raw, at, subject, ports):
    raw = k8s.fields(raw, at, subject, ('port',), neutral={'host': ''})
    return {'port': _port(raw.get('port'), at + '.port', subject, ports)}


def _exec(raw, at, subject, _ports):
    raw = k8s.fields(raw, at, subject, ('command',))
    command = k8s.items(raw.get('command'), at + '.command', subject, str)
    if not command:
        raise SpecError(subject, '%s.command: required, the program and its arguments' % at)
    return {'command': command}


def _grpc(raw, at, subject, _ports):
    raw = k8s.fields(raw, at, subject, ('port', 'service'))
    service = raw.get('service') or ''
    if not isinstance(service, str):
        raise SpecError(subject, '%s.service: %r must be a string' % (at, service))
    return {'port': k8s.port_number(raw.get('port'), at + '.port', subject), 'service': service}


HANDLER_PARSERS = {'httpGet': _http_get, 'tcpSocket': _tcp_socket, 'exec': _exec, 'grpc': _grpc}


def for_stand_in(probes, served):
    """The probes of a container that runs the stand-in: what it cannot
    answer (exec, HTTPS, gRPC, a port it does not serve over TCP) is skipped."""
    planned = {}
    for kind, probe in probes.items():
        why = ('its exec probe cannot run in a stand-in' if probe['handler'] == 'exec'
               else 'the stand-in does not serve gRPC' if probe['handler'] == 'grpc'
               else 'the stand-in does not serve HTTPS' if probe.get('scheme') == 'HTTPS'
               else 'the stand-in does not serve TCP port %d' % probe['port'] if probe['port'] not in served
               else None)
        planned[kind] = dict(probe, skip=why) if why and 'skip' not in probe else probe
    return planned


def notes(container_name, probes):
    """What the run says of the probes that count as passing untried."""
    return ['container %s: %s probe counts as passing: %s' % (container_name, kind, probe['skip'])
            for kind, probe in sorted(probes.items()) if probe.get('skip')]
