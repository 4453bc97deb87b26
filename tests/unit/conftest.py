import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

AGNHOST = Path(__file__).resolve().parents[2] / 'roles' / 'pods' / 'files' / 'podnet-agnhost'
WAIT = 5  # seconds a server may take to listen, or to exit when killed


def free_ports(count):
    """count distinct TCP ports free on loopback (held together while picked)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(('127.0.0.1', 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def listening(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def health_server(tmp_path):
    """start(*flags): podnet-agnhost grpc-health-checking on free ports,
    (gRPC port, HTTP port) once both listen. Every server started is killed
    when the test ends, passed or failed."""
    servers = []

    def start(*flags):
        port, http_port = free_ports(2)
        log = tmp_path / ('grpc-health-%d.log' % len(servers))
        with open(log, 'w') as out:
            servers.append(subprocess.Popen(
                [sys.executable, str(AGNHOST), 'grpc-health-checking', '--port=%d' % port,
                 '--http-port=%d' % http_port, *flags], stdin=subprocess.DEVNULL, stdout=out, stderr=out))
        deadline = time.monotonic() + WAIT
        while not (listening(port) and listening(http_port)):
            if servers[-1].poll() is not None or time.monotonic() > deadline:
                pytest.fail('grpc-health-checking did not listen: %s' % log.read_text())
            time.sleep(0.05)
        return port, http_port
    try:
        yield start
    finally:
        for server in servers:
            server.kill()
            server.wait(WAIT)
