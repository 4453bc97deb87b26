"""A grpc probe, tried as the kubelet tries it: one call of
grpc.health.v1.Health/Check to the pod's IP and port, over cleartext
HTTP/2 (h2c with prior knowledge, no TLS), on a connection of its own; it
passes only when the answer is HealthCheckResponse{status: SERVING}.

Anything else fails with a reason a user can read: another serving status
(`gRPC status NOT_SERVING`), a grpc-status error in the trailers
(`grpc-status 12 (UNIMPLEMENTED): unknown service ...`, what a server
without the health service answers), a refused connection, the probe's
timeoutSeconds passing (connect, call and reply together), or a reply
that is no gRPC answer. The bytes are grpc_codec.py's and the frames
h2_connection.py's, which podnet-agnhost's grpc-health-checking server
shares (roles/pods/files/, where both live).
"""
import socket
import time

from ansible.module_utils.podnet.pods import grpc_codec as codec
from ansible.module_utils.podnet.pods import h2_connection as h2

STREAM = 1  # a client's first stream, the only one this call opens


class CallFailed(Exception):
    """The server ended the call, or the connection, without an answer."""


def check(host, port, service, timeout, user_agent):
    """None when host:port answers that service (or with '' the whole
    server) is SERVING, else why not; timeout bounds it all, in seconds."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            conn = h2.Connection(sock, codec.Decoder(), deadline)
            conn.send(h2.PREFACE, h2.settings(),
                      h2.frame(h2.HEADERS, h2.END_HEADERS, STREAM,
                               codec.encode_headers(codec.request_headers(host, port, user_agent))),
                      h2.frame(h2.DATA, h2.END_STREAM, STREAM, codec.message(codec.health_request(service))))
            return judge(*answer(conn))
    except socket.timeout:
        return 'timed out after %ss' % timeout
    except CallFailed as exc:
        return str(exc)
    except EOFError:
        return 'the server closed the connection without answering'
    except (h2.WireError, codec.CodecError) as exc:
        return 'not a gRPC answer: %s' % exc
    except OSError as exc:
        return exc.strerror.lower() if exc.strerror else str(exc) or type(exc).__name__


def answer(conn):
    """({header: value}, data, {trailer: value}) of the call's stream once
    it ends; a reply of trailers only gives them as its headers too."""
    headers, data = None, b''
    for kind, flags, stream, value in conn.events():
        if kind == h2.GOAWAY:
            last_stream, code = value
            if code or last_stream < STREAM:  # else a graceful goodbye that lets the call finish
                raise CallFailed('the server went away (GOAWAY %s)' % codec.name_of(h2.ERRORS, code))
        elif stream != STREAM:
            continue
        elif kind == h2.RST_STREAM:
            raise CallFailed('the server reset the call (RST_STREAM %s)' % codec.name_of(h2.ERRORS, value))
        elif kind == h2.DATA:
            data += value
        elif headers is None:
            headers = dict(value)
        if flags & h2.END_STREAM and stream == STREAM:
            ended = dict(value) if kind == h2.HEADERS else {}
            return headers or {}, data, ended


def judge(headers, data, trailers):
    """None when the reply says SERVING, else why not."""
    if headers.get(':status') != '200':
        return 'HTTP status %s' % headers.get(':status', 'missing')
    if not headers.get('content-type', '').startswith(codec.GRPC_CONTENT_TYPE):
        return 'not a gRPC answer (content-type %s)' % (headers.get('content-type') or 'missing')
    code = trailers.get('grpc-status')
    if code is None:
        return 'not a gRPC answer (no grpc-status)'
    if code != '0':
        named = codec.name_of(codec.GRPC_CODES, int(code)) if code.isdigit() else 'unknown'
        text = codec.status_message(trailers)
        return 'grpc-status %s (%s)%s' % (code, named, ': ' + text if text else '')
    status = codec.served_status(codec.first_message(data))
    return None if status == codec.SERVING else 'gRPC status %s' % codec.name_of(codec.SERVING_STATUSES, status)
