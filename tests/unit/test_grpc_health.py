"""gRPC health checking as the kubelet's grpc probe does it (pods/
grpc_health.py), on the codec and frames it shares with podnet-agnhost's
grpc-health-checking server (roles/pods/files/grpc_codec.py and
h2_connection.py): HPACK against RFC 7541's own examples (Appendix C), the
client against that server on loopback, and against hand-made servers that
answer as grpc-go does or misbehave. Every server stops when its test ends."""
import contextlib
import socket
import threading
import time
import urllib.request
from fractions import Fraction

import pytest
from ansible.module_utils.podnet.pods import grpc_codec as codec
from ansible.module_utils.podnet.pods import grpc_health
from ansible.module_utils.podnet.pods import h2_connection as h2
from conftest import free_ports

AGENT = 'kube-probe/1.31'
WAIT = 5  # bound on every wait, in seconds


# -- HPACK: RFC 7541, Appendix C ----------------------------------------------
def test_integers_are_coded_as_c1_shows():
    assert codec.encode_integer(10, 5) == bytes.fromhex('0a')
    assert codec.encode_integer(1337, 5) == bytes.fromhex('1f9a0a')
    assert codec.encode_integer(42, 8) == bytes.fromhex('2a')
    assert codec.decode_integer(bytes.fromhex('1f9a0a'), 0, 5) == (1337, 3)
    assert codec.decode_integer(bytes.fromhex('ea'), 0, 5) == (10, 1)  # the bits above the prefix are not its


@pytest.mark.parametrize('block, header, table_size', [
    ('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', ('custom-key', 'custom-header'), 55),
    ('040c 2f73 616d 706c 652f 7061 7468', (':path', '/sample/path'), 0),
    ('1008 7061 7373 776f 7264 0673 6563 7265 74', ('password', 'secret'), 0),
    ('82', (':method', 'GET'), 0)], ids=['C.2.1 indexed', 'C.2.2 not indexed', 'C.2.3 never indexed', 'C.2.4'])
def test_each_field_representation_as_c2_shows(block, header, table_size):
    decoder = codec.Decoder()
    assert decoder.decode(bytes.fromhex(block)) == [header]
    assert decoder.size == table_size


REQUESTS = [
    [(':method', 'GET'), (':scheme', 'http'), (':path', '/'), (':authority', 'www.example.com')],
    [(':method', 'GET'), (':scheme', 'http'), (':path', '/'), (':authority', 'www.example.com'),
     ('cache-control', 'no-cache')],
    [(':method', 'GET'), (':scheme', 'https'), (':path', '/index.html'), (':authority', 'www.example.com'),
     ('custom-key', 'custom-value')]]


@pytest.mark.parametrize('blocks', [
    ['8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', '8286 84be 5808 6e6f 2d63 6163 6865',
     '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65'],
    ['8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', '8286 84be 5886 a8eb 1064 9cbf',
     '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf']], ids=['C.3', 'C.4 Huffman'])
def test_requests_on_one_connection_as_c3_and_c4_show(blocks):
    decoder = codec.Decoder()
    assert [(decoder.decode(bytes.fromhex(block)), decoder.size) for block in blocks] == [
        (REQUESTS[0], 57), (REQUESTS[1], 110), (REQUESTS[2], 164)]
    assert decoder.table == [('custom-key', 'custom-value'), ('cache-control', 'no-cache'),
                             (':authority', 'www.example.com')]


DATE1, DATE2 = 'Mon, 21 Oct 2013 20:13:21 GMT', 'Mon, 21 Oct 2013 20:13:22 GMT'
COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'
LOCATION = 'https://www.example.com'
RESPONSES = [
    [(':status', '302'), ('cache-control', 'private'), ('date', DATE1), ('location', LOCATION)],
    [(':status', '307'), ('cache-control', 'private'), ('date', DATE1), ('location', LOCATION)],
    [(':status', '200'), ('cache-control', 'private'), ('date', DATE2), ('location', LOCATION),
     ('content-encoding', 'gzip'), ('set-cookie', COOKIE)]]


@pytest.mark.parametrize('blocks', [
    ['4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 '
     '3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
     '4803 3330 37c1 c0bf',
     '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 '
     '7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 '
     '6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31'],
    ['4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad '
     '1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
     '4883 640e ffc1 c0bf',
     '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 '
     'e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07']],
    ids=['C.5', 'C.6 Huffman'])
def test_responses_evicting_from_a_256_octet_table_as_c5_and_c6_show(blocks):
    decoder = codec.Decoder(256)
    assert [(decoder.decode(bytes.fromhex(block)), decoder.size) for block in blocks] == [
        (RESPONSES[0], 222), (RESPONSES[1], 222), (RESPONSES[2], 215)]
    assert decoder.table == [('set-cookie', COOKIE), ('content-encoding', 'gzip'), ('date', DATE2)]


def test_the_huffman_code_is_appendix_bs():
    assert len(codec.HUFFMAN_LENGTHS) == 257
    assert sum(Fraction(1, 2 ** length) for length in codec.HUFFMAN_LENGTHS) == 1  # complete: no bit string unused
    codes = {symbol: key for key, symbol in codec.HUFFMAN_CODES.items()}
    assert [codes[symbol] for symbol in (0, ord(' '), ord('0'), ord(':'), ord('\\'), 127, 255, codec.EOS)] == [
        (13, 0x1ff8), (6, 0x14), (5, 0x0), (7, 0x5c), (19, 0x7fff0), (28, 0xffffffc), (26, 0x3ffffee),
        (30, 0x3fffffff)]


@pytest.mark.parametrize('block, words', [
    ('80', 'no header table entry 0'),
    ('be', 'no header table entry 62'),
    ('3fe21f', 'a table size above 4096'),
    ('82 20', 'a table size update after a header'),
    ('00 03 616263', 'a header block cut short'),
    ('00 05 616263', 'a string runs past its header block'),
    ('00 81 ff', 'a Huffman string padded with other than EOS'),  # eight bits of padding
    ('00 81 00', 'a Huffman string padded with other than EOS'),  # '0', then padding of zeros
    ('00 84 ffffffff', 'EOS inside a Huffman string'),
    ('1f', 'a varint cut short')])
def test_a_malformed_header_block_is_refused(block, words):
    with pytest.raises(codec.CodecError, match=words):
        codec.Decoder().decode(bytes.fromhex(block))


def test_what_is_encoded_decodes_back():
    headers = codec.request_headers('10.42.0.7', 5000, AGENT) + [('x-long', 'v' * 300)]
    assert codec.Decoder().decode(codec.encode_headers(headers)) == headers
    trailers = codec.trailers(5, 'unknown service \u2713 100%')
    assert codec.status_message(dict(codec.Decoder().decode(codec.encode_headers(trailers)))) == (
        'unknown service \u2713 100%')
    assert dict(trailers)['grpc-message'] == 'unknown service %E2%9C%93 100%25'


def test_the_health_messages_and_their_framing():
    assert codec.health_request('') == b'' and codec.health_response(0) == b''
    assert codec.requested_service(codec.health_request('shop.Cart')) == 'shop.Cart'
    assert codec.served_status(bytes.fromhex('1005' + '0802' + '1a00')) == 2  # other fields passed over
    assert codec.first_message(codec.message(b'\x08\x01') + b'rest') == b'\x08\x01'
    for bad, words in ((b'\x0a\x00', 'of wire type 2, not 0'), (b'\x08', 'a varint cut short'),
                       (b'\x0a\x05ab', 'a protobuf field cut short')):
        with pytest.raises(codec.CodecError, match=words):
            codec.served_status(bad)
    with pytest.raises(codec.CodecError, match='a gRPC message cut short'):
        codec.first_message(codec.message(b'\x08\x01')[:-1])
    with pytest.raises(codec.CodecError, match='compressed'):
        codec.first_message(b'\x01' + codec.message(b'')[1:])


# -- the client against podnet-agnhost grpc-health-checking -----------------
def check(port, service='', timeout=1):
    return grpc_health.check('127.0.0.1', port, service, timeout, AGENT)


def http_get(port, path):
    with urllib.request.urlopen('http://127.0.0.1:%d%s' % (port, path), timeout=WAIT) as answer:
        return answer.read().decode()


def test_serving_passes_and_not_serving_fails_until_made_serving_again(health_server):
    port, http_port = health_server()
    assert check(port) is None
    assert http_get(http_port, '/make-not-serving').endswith('s')  # how long it has run, as Go prints it
    assert check(port) == 'gRPC status NOT_SERVING'
    http_get(http_port, '/make-serving')
    assert check(port) is None


def test_a_service_is_checked_by_its_name(health_server):
    port, _ = health_server('--service=shop.Cart')
    assert check(port, 'shop.Cart') is None
    assert check(port) == 'grpc-status 5 (NOT_FOUND): unknown service'
    assert check(port, 'shop.Other') == 'grpc-status 5 (NOT_FOUND): unknown service'


def test_the_server_stops_serving_after_its_delay(health_server):
    port, _ = health_server('--delay-unhealthy-sec=0')
    assert check(port) == 'gRPC status NOT_SERVING'


def raw_call(port, path):
    """(headers, data, trailers) of a call to any path, as grpc_health.answer reads them."""
    with socket.create_connection(('127.0.0.1', port), timeout=WAIT) as sock:
        conn = h2.Connection(sock, codec.Decoder(), time.monotonic() + WAIT)
        headers = [(name, path if name == ':path' else value)
                   for name, value in codec.request_headers('127.0.0.1', port, AGENT)]
        conn.send(h2.PREFACE, h2.settings(), h2.frame(h2.HEADERS, h2.END_HEADERS, 1, codec.encode_headers(headers)),
                  h2.frame(h2.DATA, h2.END_STREAM, 1, codec.message(b'')))
        return grpc_health.answer(conn)


@pytest.mark.parametrize('path, message', [
    (codec.WATCH, 'unimplemented'),
    ('/grpc.health.v1.Health/List', 'unknown method List for service grpc.health.v1.Health'),
    ('/shop.Cart/Get', 'unknown service shop.Cart')])
def test_the_server_has_check_only(health_server, path, message):
    port, _ = health_server()
    headers, data, trailers = raw_call(port, path)
    assert (headers[':status'], data) == ('200', b'')
    assert grpc_health.judge(headers, data, trailers) == 'grpc-status 12 (UNIMPLEMENTED): ' + message


def literal_with_indexing(headers):
    """A header block that adds every header to the peer's dynamic table."""
    block = b''
    for name, value in headers:
        block += b'\x40' + b''.join(codec.encode_integer(len(text), 7) + text.encode() for text in (name, value))
    return block


def test_the_server_answers_calls_on_one_connection_from_its_dynamic_table(health_server):
    port, _ = health_server('--service=a')
    headers = codec.request_headers('127.0.0.1', port, AGENT)
    indexed = bytes(0x80 | index for index in range(61 + len(headers), 61, -1))  # the same headers, oldest first
    with socket.create_connection(('127.0.0.1', port), timeout=WAIT) as sock:
        conn = h2.Connection(sock, codec.Decoder(), time.monotonic() + WAIT)
        conn.send(h2.PREFACE, h2.settings(),
                  h2.frame(h2.HEADERS, h2.END_HEADERS, 1, literal_with_indexing(headers)),
                  h2.frame(h2.DATA, h2.END_STREAM, 1, codec.message(codec.health_request('a'))),
                  h2.frame(h2.HEADERS, h2.END_HEADERS, 3, indexed),
                  h2.frame(h2.DATA, h2.END_STREAM, 3, codec.message(codec.health_request('b'))))
        ended = {}
        for kind, flags, stream, value in conn.events():
            if kind == h2.HEADERS and flags & h2.END_STREAM:
                ended[stream] = dict(value)['grpc-status']
            if len(ended) == 2:
                break
    assert ended == {1: '0', 3: '5'}


def test_the_server_ends_a_connection_that_breaks_http2_with_goaway(health_server):
    port, _ = health_server()
    with socket.create_connection(('127.0.0.1', port), timeout=WAIT) as sock:
        conn = h2.Connection(sock, codec.Decoder(), time.monotonic() + WAIT)
        conn.send(h2.PREFACE, h2.settings(), h2.frame(h2.PING, 0, 0, b'short'))
        goaway = next(event for event in conn.events() if event[0] == h2.GOAWAY)
        assert goaway[3] == (0, h2.FRAME_SIZE_ERROR)
        with pytest.raises(EOFError):
            next(conn.events())


def test_the_server_closes_a_connection_that_is_not_http2(health_server):
    port, _ = health_server()
    with socket.create_connection(('127.0.0.1', port), timeout=WAIT) as sock:
        sock.sendall(b'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
        assert sock.recv(1024) == b''


def test_a_refused_connection_fails():
    [port] = free_ports(1)
    assert check(port) == 'connection refused'


# -- the client against hand-made servers ------------------------------------
@contextlib.contextmanager
def one_shot(answer):
    """The port of a loopback server whose first connection gets answer(sock)."""
    listener = socket.create_server(('127.0.0.1', 0))

    def serve():
        with contextlib.suppress(OSError):
            sock, _ = listener.accept()
            with sock:
                answer(sock)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes a pending accept()
        listener.close()
        thread.join(WAIT)


def after_the_call(*frames):
    """An answer: read the call as a server does, send SETTINGS and frames,
    and keep the connection until the client closes it."""
    def answer(sock):
        conn = h2.Connection(sock, codec.Decoder(), time.monotonic() + WAIT)
        assert conn.preface()
        next(event for event in conn.events() if event[1] & h2.END_STREAM)
        conn.send(h2.settings(), *frames)
        while sock.recv(4096):
            pass
    return answer


def test_a_server_that_never_answers_times_out():
    quiet = threading.Event()
    with one_shot(lambda sock: quiet.wait(WAIT)) as port:
        started = time.monotonic()
        try:
            assert check(port, timeout=1) == 'timed out after 1s'
        finally:
            quiet.set()
        assert 1 <= time.monotonic() - started < 2.5


def huffman_string(text):
    """text as an HPACK string literal, Huffman-coded (as grpc-go writes them)."""
    codes = {symbol: key for key, symbol in codec.HUFFMAN_CODES.items()}
    bits = ''.join(format(code, '0%db' % length) for length, code in (codes[octet] for octet in text.encode()))
    bits += '1' * (-len(bits) % 8)  # padded with the start of EOS
    raw = bytes(int(bits[at:at + 8], 2) for at in range(0, len(bits), 8))
    return codec.encode_integer(len(raw), 7, 0x80) + raw


def test_an_answer_indexed_and_huffman_coded_is_read():
    headers = bytes([0x88]) + bytes([0x40 | 31]) + huffman_string('application/grpc')  # :status 200; indexed
    trailers = bytes([0x40]) + huffman_string('grpc-status') + huffman_string('0') + bytes([0xbf])
    frames = (h2.frame(h2.HEADERS, h2.END_HEADERS, 1, headers),
              h2.frame(h2.DATA, 0, 1, codec.message(codec.health_response(codec.SERVING))),
              h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, trailers))
    with one_shot(after_the_call(*frames)) as port:
        assert check(port) is None


@pytest.mark.parametrize('frames, why', [
    ((h2.frame(h2.RST_STREAM, 0, 1, bytes.fromhex('00000007')),),
     'the server reset the call (RST_STREAM REFUSED_STREAM)'),
    ((h2.goaway(11),), 'the server went away (GOAWAY ENHANCE_YOUR_CALM)'),
    ((h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, codec.encode_headers([(':status', '404')])),),
     'HTTP status 404'),
    ((h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, codec.encode_headers(codec.RESPONSE_HEADERS)),),
     'not a gRPC answer (no grpc-status)'),
    ((h2.frame(h2.HEADERS, h2.END_HEADERS, 1, codec.encode_headers(codec.RESPONSE_HEADERS)),
      h2.frame(h2.DATA, 0, 1, codec.message(b'\x0a\x00')),
      h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, codec.encode_headers(codec.trailers(0)))),
     'not a gRPC answer: protobuf field 1 of wire type 2, not 0')])
def test_an_answer_that_is_no_serving_status_fails_saying_why(frames, why):
    with one_shot(after_the_call(*frames)) as port:
        assert check(port) == why


def test_a_server_that_is_not_http2_fails():
    def http1(sock):
        sock.recv(4096)
        sock.sendall(b'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')
    with one_shot(http1) as port:
        assert check(port).startswith('not a gRPC answer: a frame of 4740180 bytes')
