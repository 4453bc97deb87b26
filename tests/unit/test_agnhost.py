"""podnet-agnhost, the agnhost stand-in that pods run: each subcommand is
started as a real process on loopback, on free ephemeral ports, and probed
over real sockets. Every process a test starts is killed when it ends."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import types
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / 'roles' / 'pods' / 'files' / 'podnet-agnhost'
HOST = '127.0.0.1'
WAIT = 5  # bound on every single wait, in seconds
DIAL = '/dial?request=hostname&protocol=%s&host=%s&port=%d&tries=2'


def load_script():
    # Executed rather than imported: the file has no .py suffix and an import
    # would leave a __pycache__ inside the role's files.
    module = types.ModuleType('podnet_agnhost')
    exec(compile(SCRIPT.read_text(), str(SCRIPT), 'exec'), module.__dict__)
    return module


agnhost = load_script()


def kernel_has_sctp():
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, agnhost.IPPROTO_SCTP).close()
    except OSError:
        return False
    return True


NO_SCTP = not kernel_has_sctp()
needs_no_sctp = pytest.mark.skipif(not NO_SCTP, reason='this kernel has SCTP sockets')


# --- plumbing -----------------------------------------------------------

class Proc:
    """The script running with args, its stdout and stderr in files."""

    def __init__(self, args, folder, index):
        self.out = open(folder / ('%d.out' % index), 'w+')
        self.err = open(folder / ('%d.err' % index), 'w+')
        self.popen = subprocess.Popen([str(SCRIPT), *args], stdin=subprocess.DEVNULL,
                                      stdout=self.out, stderr=self.err)

    def stdout(self):
        return Path(self.out.name).read_text()

    def stderr(self):
        return Path(self.err.name).read_text()

    def signal_and_wait(self, signum):
        self.popen.send_signal(signum)
        return self.popen.wait(WAIT)

    def stop(self):
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(WAIT)
        self.out.close()
        self.err.close()


@pytest.fixture
def spawn(tmp_path):
    procs = []

    def start(*args):
        procs.append(Proc(args, tmp_path, len(procs)))
        return procs[-1]
    try:
        yield start
    finally:
        for proc in procs:
            proc.stop()


def run(*args):
    """The script's completed run; subprocess.run kills it past WAIT."""
    return subprocess.run([str(SCRIPT), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=WAIT)


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def free_port_for_tcp_and_udp():
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((HOST, port))
        except OSError:
            continue
        return port
    pytest.fail('no port free for both TCP and UDP')


def until(probe, proc, what):
    """probe()'s first result that raised no OSError, within WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            pytest.fail('%s: exited %s: %s' % (what, proc.popen.returncode, proc.stderr()))
        try:
            return probe()
        except OSError:
            time.sleep(0.05)
    pytest.fail('%s: no answer within %ss' % (what, WAIT))


def http_get(port, path):
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request('GET', path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def udp_ask(port, payload):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        # Connected, so a port nobody bound yet fails fast with a refusal.
        sock.connect((HOST, port))
        sock.settimeout(1)
        sock.send(payload)
        return sock.recv(2048).decode()


def tcp_read(port):
    with socket.create_connection((HOST, port), timeout=2) as sock:
        chunks = []
        while chunk := sock.recv(1024):
            chunks.append(chunk)
        return b''.join(chunks).decode()


def wait_printed(proc, text):
    deadline = time.monotonic() + WAIT
    while text not in proc.stdout():
        if time.monotonic() > deadline or proc.popen.poll() is not None:
            pytest.fail('never printed %r: %s' % (text, proc.stderr()))
        time.sleep(0.02)


@pytest.fixture
def netexec(spawn):
    """A running netexec: (proc, http port, udp port)."""
    http_port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    proc = spawn('netexec', '--http-port', str(http_port), '--udp-port', str(udp_port))
    until(lambda: http_get(http_port, '/healthz'), proc, 'netexec HTTP')
    return proc, http_port, udp_port


# --- netexec ------------------------------------------------------------

def test_netexec_http_endpoints(netexec):
    _, port, _ = netexec
    assert http_get(port, '/hostname') == (200, socket.gethostname())
    assert http_get(port, '/hostName') == (200, socket.gethostname())
    status, client = http_get(port, '/clientip')
    assert status == 200 and client.startswith('127.0.0.1:')
    assert int(client.rsplit(':', 1)[1]) > 0
    assert http_get(port, '/echo?msg=Hello%20podnet') == (200, 'Hello podnet')
    assert http_get(port, '/echo?msg=gone&code=404') == (404, 'gone')
    assert http_get(port, '/healthz') == (200, '')
    assert http_get(port, '/readyz') == (200, 'ok')


def test_netexec_other_paths_answer_the_time_as_upstream(netexec):
    _, port, _ = netexec
    status, body = http_get(port, '/no/such/endpoint')
    assert status == 200 and body.startswith('NOW: ')


def test_netexec_refuses_shell_and_upload(netexec):
    _, port, _ = netexec
    assert http_get(port, '/shell?cmd=id')[0] == 501
    assert http_get(port, '/upload')[0] == 501


def test_netexec_udp_commands(netexec):
    _, _, port = netexec
    assert udp_ask(port, b'hostname') == socket.gethostname()
    assert udp_ask(port, b'echo podnet says hi\n') == 'podnet says hi'
    # Upstream lowercases the whole command, the echoed text included.
    assert udp_ask(port, b'echo MiXeD') == 'mixed'
    assert udp_ask(port, b'clientip').startswith('127.0.0.1:')


def test_netexec_dial_over_http_and_udp(netexec):
    _, http_port, udp_port = netexec
    name = socket.gethostname()
    for protocol, port in (('http', http_port), ('udp', udp_port)):
        status, body = http_get(http_port, DIAL % (protocol, HOST, port))
        assert (status, json.loads(body)) == (200, {'responses': [name, name]})
    status, body = http_get(http_port, '/dial?request=echo%%3Fmsg%%3Dviadial&host=%s&port=%d'
                            % (HOST, http_port))
    assert json.loads(body) == {'responses': ['viadial']}


def test_netexec_dial_reports_failures(netexec):
    _, http_port, _ = netexec
    closed = free_port()
    for protocol in ('http', 'udp'):
        status, body = http_get(http_port, DIAL % (protocol, HOST, closed))
        report = json.loads(body)
        assert status == 200 and 'responses' not in report
        assert len(report['errors']) == 2 and 'connection refused' in report['errors'][0]
    assert http_get(http_port, '/dial?host=%s&port=%d' % (HOST, closed))[0] == 400
    assert http_get(http_port, DIAL % ('icmp', HOST, 1))[0] == 400
    assert http_get(http_port, '/dial?request=hostname&tries=x&host=%s&port=1' % HOST)[0] == 400


def test_netexec_is_unhealthy_without_udp_or_sctp_server(spawn):
    port = free_port()
    proc = spawn('netexec', '--http-port', str(port), '--udp-port', '-1')
    assert until(lambda: http_get(port, '/healthz'), proc, 'netexec HTTP') == (412, '')
    assert http_get(port, '/hostname') == (200, socket.gethostname())


@needs_no_sctp
def test_netexec_reports_missing_sctp_and_serves_on(spawn):
    http_port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    proc = spawn('netexec', '--http-port', str(http_port), '--udp-port', str(udp_port),
                 '--sctp-port', str(free_port()))
    answer = until(lambda: http_get(http_port, '/hostname'), proc, 'netexec HTTP')
    assert answer == (200, socket.gethostname())
    assert udp_ask(udp_port, b'hostname') == socket.gethostname()
    assert proc.popen.poll() is None
    assert 'SCTP' in proc.stderr() and 'Traceback' not in proc.stderr()
    status, body = http_get(http_port, '/dial?request=hostname&protocol=sctp&host=%s&port=1' % HOST)
    assert status == 200 and 'sctp dial failed' in json.loads(body)['errors'][0]


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_netexec_exits_0_on_signal(netexec, signum):
    proc = netexec[0]
    started = time.monotonic()
    assert proc.signal_and_wait(signum) == 0
    assert time.monotonic() - started < 2


def test_netexec_delay_shutdown_serves_on_but_not_ready(spawn):
    port = free_port()
    proc = spawn('netexec', '--http-port', str(port),
                 '--udp-port', str(free_port(socket.SOCK_DGRAM)), '--delay-shutdown', '1')
    until(lambda: http_get(port, '/readyz'), proc, 'netexec HTTP')
    proc.popen.send_signal(signal.SIGTERM)
    # The signal lands asynchronously: poll (bounded) until readiness drops.
    deadline = time.monotonic() + WAIT
    answer = until(lambda: http_get(port, '/readyz'), proc, 'netexec HTTP')
    while answer[0] != 503 and time.monotonic() < deadline:
        time.sleep(0.02)
        answer = until(lambda: http_get(port, '/readyz'), proc, 'netexec HTTP')
    assert answer == (503, 'shutting down')
    assert proc.popen.wait(WAIT) == 0


def test_netexec_exit_endpoint_exits_with_the_code(netexec):
    proc, port, _ = netexec
    assert http_get(port, '/exit?code=3&timeout=1s') == (200, '')
    assert proc.popen.wait(WAIT) == 3


# --- serve-hostname -----------------------------------------------------

def test_serve_hostname_http_by_default(spawn):
    port = free_port()
    proc = spawn('serve-hostname', '--port', str(port))
    assert until(lambda: http_get(port, '/any/path'), proc, 'HTTP') == (200, socket.gethostname())


def test_serve_hostname_tcp_and_udp_on_one_port(spawn):
    port = free_port_for_tcp_and_udp()
    proc = spawn('serve-hostname', '--tcp', '--udp=true', '--http=false', '--port', str(port))
    assert until(lambda: tcp_read(port), proc, 'TCP') == socket.gethostname()
    assert until(lambda: udp_ask(port, b'anything'), proc, 'UDP') == socket.gethostname()
    assert proc.signal_and_wait(signal.SIGTERM) == 0


@pytest.mark.parametrize('raw', ['--tcp', '--udp'])
def test_serve_hostname_refuses_raw_with_http_as_upstream(raw):
    result = run('serve-hostname', raw, '--port', str(free_port()))
    assert result.returncode == 1
    assert 'HTTP mode at the same time' in result.stderr


# --- connect ------------------------------------------------------------

def test_connect_tcp_to_listening_port():
    with socket.create_server((HOST, 0)) as server:
        result = run('connect', '%s:%d' % (HOST, server.getsockname()[1]), '--timeout', '1s')
    assert (result.returncode, result.stderr) == (0, '')


def test_connect_tcp_to_closed_port_is_refused():
    result = run('connect', '%s:%d' % (HOST, free_port()), '--timeout=1s')
    assert (result.returncode, result.stderr) == (1, 'REFUSED\n')


def test_connect_udp_answered(spawn):
    port = free_port(socket.SOCK_DGRAM)
    proc = spawn('serve-hostname', '--udp', '--http=false', '--port', str(port))
    until(lambda: udp_ask(port, b'ready?'), proc, 'UDP')
    result = run('connect', '%s:%d' % (HOST, port), '--protocol', 'udp', '--timeout', '1s')
    assert (result.returncode, result.stderr) == (0, '')


def test_connect_udp_times_out_when_nobody_answers():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        # Bound, so the kernel sends no ICMP refusal: the probe goes unanswered.
        silent.bind((HOST, 0))
        started = time.monotonic()
        result = run('connect', '%s:%d' % silent.getsockname(), '--protocol=udp', '--timeout=500ms')
        elapsed = time.monotonic() - started
        silent.settimeout(0)
        assert silent.recv(100) == b'hostname\n'
    assert result.returncode == 1 and result.stderr.startswith('TIMEOUT: ')
    assert 0.45 <= elapsed < 1.5


def test_connect_udp_to_closed_port_is_refused():
    result = run('connect', '%s:%d' % (HOST, free_port(socket.SOCK_DGRAM)), '--protocol', 'udp',
                 '--timeout', '2.5s')
    assert result.returncode == 1 and result.stderr.startswith('REFUSED: ')


@needs_no_sctp
def test_connect_sctp_without_kernel_sctp_is_an_error_not_a_crash():
    result = run('connect', '%s:%d' % (HOST, free_port()), '--protocol', 'sctp', '--timeout', '1s')
    assert result.returncode == 1
    assert result.stderr.startswith('OTHER: ') and 'Traceback' not in result.stderr


def test_connect_malformed_address_is_unknown():
    result = run('connect', HOST)
    assert result.returncode == 1 and result.stderr.startswith('UNKNOWN: ')


def test_connect_unsupported_protocol_exits_1_as_upstream():
    result = run('connect', '%s:1' % HOST, '--protocol', 'icmp')
    assert result.returncode == 1 and result.stderr.startswith('Unsupported protocol')


# --- pause --------------------------------------------------------------

@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_pause_exits_0_on_signal(spawn, signum):
    proc = spawn('pause')
    wait_printed(proc, 'Paused')
    time.sleep(0.2)
    assert proc.popen.poll() is None
    assert proc.signal_and_wait(signum) == 0


# --- grpc-health-checking -----------------------------------------------
# Its gRPC side is tested with podnet's probe client (test_grpc_health.py).

def test_grpc_health_checking_flags_default_as_upstream():
    args = agnhost.build_parser().parse_args(['grpc-health-checking'])
    assert (args.port, args.http_port, args.service, args.delay_unhealthy_sec) == (5000, 8080, '', -1)


def test_grpc_health_checking_http_has_only_its_two_endpoints(health_server):
    _, http_port = health_server()
    conn = http.client.HTTPConnection(HOST, http_port, timeout=WAIT)
    try:
        conn.request('GET', '/healthz')
        answer = conn.getresponse()
        assert (answer.status, answer.read()) == (404, b'404 page not found\n')
        conn.request('GET', '/make-serving')
        answer = conn.getresponse()
        assert answer.status == 200 and re.fullmatch(r'[0-9.]+(ms|s)', answer.read().decode())
    finally:
        conn.close()


@pytest.mark.parametrize('seconds, text', [
    (0, '0s'), (5e-7, '500ns'), (1.2e-5, '12µs'), (0.0015, '1.5ms'), (0.35, '350ms'), (1.5, '1.5s'),
    (123.25, '2m3.25s'), (3723, '1h2m3s')])
def test_durations_print_as_go_prints_them(seconds, text):
    assert agnhost.go_duration(seconds) == text


# --- stand-in -----------------------------------------------------------

def test_stand_in_answers_as_netexec_on_every_declared_port(spawn):
    first, second, udp = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    proc = spawn('stand-in', '--tcp', str(first), '--tcp', str(second), '--udp', str(udp))
    for port in (first, second):
        assert until(lambda: http_get(port, '/hostname'), proc, 'stand-in HTTP') == (200, socket.gethostname())
        status, client = http_get(port, '/clientip')
        assert status == 200 and client.startswith(HOST + ':')
        assert http_get(port, '/echo?msg=hi') == (200, 'hi')
    assert until(lambda: udp_ask(udp, b'hostname'), proc, 'stand-in UDP') == socket.gethostname()
    assert udp_ask(udp, b'echo x') == 'x'
    assert udp_ask(udp, b'clientip').startswith(HOST + ':')


def test_stand_in_without_ports_pauses_until_a_signal(spawn):
    proc = spawn('stand-in')
    deadline = time.monotonic() + WAIT
    while 'no containerPort, paused' not in proc.stderr():
        assert proc.popen.poll() is None and time.monotonic() < deadline, proc.stderr()
        time.sleep(0.02)
    assert proc.signal_and_wait(signal.SIGTERM) == 0


def test_stand_in_serves_the_ports_it_can_and_says_which_it_cannot(spawn):
    with socket.socket() as taken:
        taken.bind(('0.0.0.0', 0))
        taken.listen(1)
        busy, free = taken.getsockname()[1], free_port()
        proc = spawn('stand-in', '--tcp', str(busy), '--tcp', str(free))
        assert until(lambda: http_get(free, '/hostname'), proc, 'stand-in HTTP')[0] == 200
        assert 'TCP port %d not served' % busy in proc.stderr()


def test_stand_in_for_an_init_container_completes_at_once():
    done = run('stand-in', '--complete')
    assert done.returncode == 0 and 'completed' in done.stderr


# --- command line -------------------------------------------------------

@pytest.mark.parametrize('args', [
    [], ['bogus'], ['connect'], ['connect', '%s:1' % HOST, '--timeout', '5'],
    ['netexec', '--http-port', 'x'], ['serve-hostname', '--tcp=maybe'], ['pause', '--nope']])
def test_usage_errors_exit_2(args):
    result = run(*args)
    assert result.returncode == 2 and 'usage:' in result.stderr


def test_script_is_an_executable_python3_script():
    assert os.access(SCRIPT, os.X_OK)
    assert SCRIPT.read_text().startswith('#!/usr/bin/env python3\n')


@pytest.mark.parametrize('text, seconds', [
    ('0', 0), ('1s', 1), ('500ms', 0.5), ('2.5s', 2.5), ('1m30s', 90), ('1h', 3600),
    ('250us', 0.00025), ('1.s', 1)])
def test_go_durations(text, seconds):
    assert agnhost.duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize('text', ['', '5', 's', '.s', '1x', '-1s', '1s ', 'ms1'])
def test_bad_go_durations(text):
    with pytest.raises(ValueError):
        agnhost.duration(text)


def test_boolean_flags_take_pflag_forms():
    parse = agnhost.build_parser().parse_args
    defaults = parse(['serve-hostname'])
    assert (defaults.http, defaults.tcp, defaults.udp, defaults.port) == (True, False, False, 9376)
    flags = parse(['serve-hostname', '--tcp', '--udp=true', '--http=false', '--port=1'])
    assert (flags.http, flags.tcp, flags.udp, flags.port) == (False, True, True, 1)


@pytest.mark.parametrize('text, expected', [
    ('127.0.0.1:80', ('127.0.0.1', '80')), ('[::1]:80', ('::1', '80')),
    ('name:http', ('name', 'http')), (':80', ('', '80'))])
def test_split_host_port(text, expected):
    assert agnhost.split_host_port(text) == expected


@pytest.mark.parametrize('text', ['127.0.0.1', '::1:80', '[::1]', '[::1'])
def test_split_host_port_rejects(text):
    with pytest.raises(ValueError):
        agnhost.split_host_port(text)
