"""HTTP/2 for one gRPC call, grpc.health.v1.Health/Check, over cleartext
TCP with prior knowledge (h2c: no TLS, no Upgrade), as the kubelet dials a
grpc probe: the frames podnet's probe client (module_utils/podnet/pods/
grpc_health.py) and podnet-agnhost's grpc-health-checking server both
speak, the call's bytes being grpc_codec.py's.

Written by hand, after RFC 9113, for the reason grpc_codec.py gives, and
only what a unary call needs: DATA, HEADERS and CONTINUATION are read;
SETTINGS and PING are answered; RST_STREAM and GOAWAY are handed up;
WINDOW_UPDATE, PRIORITY and unknown types are passed over. No server push
(SETTINGS_ENABLE_PUSH 0 is sent), frames up to the default 16 KiB, and the
bytes of each DATA frame received are given back to the connection's
window at once; a stream's own window stays the default 64 KiB, far above
a health call's few bytes. Standard library only.

It lives beside podnet-agnhost because a pod sees only this folder of
podnet's; module_utils/podnet/pods/h2_connection.py is a link to this
file, so that modules ship the same code.
"""
import socket
import struct
import time

PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, WITH_PRIORITY = 0x4, 0x8, 0x20
SETTINGS_ENABLE_PUSH = 0x2
MAX_FRAME = 16384  # SETTINGS_MAX_FRAME_SIZE's default, which neither side raises
ERRORS = ('NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT',
          'STREAM_CLOSED', 'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR',
          'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED')
PROTOCOL_ERROR, FRAME_SIZE_ERROR, COMPRESSION_ERROR = 1, 6, 9
FIXED_SIZES = {PRIORITY: 5, RST_STREAM: 4, PING: 8, WINDOW_UPDATE: 4}  # payload lengths


class WireError(Exception):
    """The peer broke HTTP/2 (or HPACK); code: the HTTP/2 error code a
    GOAWAY names it by."""

    def __init__(self, message, code=PROTOCOL_ERROR):
        super().__init__(message)
        self.code = code


# --- frames -------------------------------------------------------------

def frame(kind, flags, stream, payload=b''):
    """One frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    return struct.pack('>I', len(payload))[1:] + struct.pack('>BBI', kind, flags, stream) + payload


def settings():
    """The SETTINGS frame each side opens with: no server push."""
    return frame(SETTINGS, 0, 0, struct.pack('>HI', SETTINGS_ENABLE_PUSH, 0))


def goaway(code, last_stream=0):
    return frame(GOAWAY, 0, 0, struct.pack('>II', last_stream, code))


def size_fits(kind, length):
    """Whether a frame of this type may have this payload length."""
    if kind == GOAWAY:
        return length >= 8
    if kind == SETTINGS:
        return length % 6 == 0
    return FIXED_SIZES.get(kind, length) == length


def unpadded(flags, payload):
    """A DATA or HEADERS payload without its padding."""
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise WireError('padding longer than its frame')
    return payload[1:len(payload) - payload[0]]


class Connection:
    """HTTP/2 over a connected socket: frames out, what a call sees in.
    decoder: the HPACK decoder of what the peer sends (grpc_codec.Decoder);
    deadline: the time.monotonic() by which every read and write must be
    done, or None to wait as long as the peer takes."""

    def __init__(self, sock, decoder, deadline=None):
        self.sock, self.decoder, self.deadline = sock, decoder, deadline
        self.received = b''
        # Small writes go at once, as gRPC's own transports send them: with
        # Nagle's algorithm an answer written after a WINDOW_UPDATE waits for
        # the peer's delayed ACK, 40 ms a call.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def preface(self):
        """Whether the peer opens with the client's connection preface (a server reads it first)."""
        return self._read(len(PREFACE)) == PREFACE

    def send(self, *frames):
        self._bound()
        self.sock.sendall(b''.join(frames))

    def send_if_open(self, *frames):
        """Send what only keeps the connection going (acknowledgements, window
        updates, a GOAWAY): a peer that has closed its end can still have
        sent what is left to read, and reading says when it is over."""
        try:
            self.send(*frames)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def events(self):
        """(kind, flags, stream, value) of each frame a call must see:
        HEADERS with its header list (CONTINUATION frames joined, HPACK
        decoded), DATA with its data, RST_STREAM with its error code and
        GOAWAY with (last stream, error code). The rest is handled here.
        EOFError when the peer closes the connection."""
        while True:
            kind, flags, stream, payload = self._frame()
            if kind == SETTINGS and not flags & ACK:
                self.send_if_open(frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                self.send_if_open(frame(PING, ACK, 0, payload))
            elif kind == HEADERS:
                yield kind, flags, stream, self._headers(flags, stream, payload)
            elif kind == DATA:
                if payload:  # give the bytes back to the connection's window
                    self.send_if_open(frame(WINDOW_UPDATE, 0, 0, struct.pack('>I', len(payload))))
                yield kind, flags, stream, unpadded(flags, payload)
            elif kind == RST_STREAM:
                yield kind, flags, stream, struct.unpack('>I', payload)[0]
            elif kind == GOAWAY:
                yield kind, flags, stream, struct.unpack('>II', payload[:8])
            elif kind == PUSH_PROMISE:
                raise WireError('a PUSH_PROMISE frame, with push turned off')
            elif kind == CONTINUATION:
                raise WireError('a CONTINUATION frame that continues no header block')

    def _headers(self, flags, stream, payload):
        """The header list of a HEADERS frame and the CONTINUATION frames that follow it."""
        block = unpadded(flags, payload)
        if flags & WITH_PRIORITY:
            block = block[5:]
        while not flags & END_HEADERS:
            kind, flags, next_stream, payload = self._frame()
            if kind != CONTINUATION or next_stream != stream:
                raise WireError('a header block cut by another frame')
            block += payload
        try:
            return self.decoder.decode(block)
        except ValueError as exc:  # grpc_codec.CodecError
            raise WireError('header block: %s' % exc, COMPRESSION_ERROR) from None

    def _frame(self):
        head = self._read(9)
        length, kind, flags, stream = struct.unpack('>IBBI', b'\0' + head)
        if length > MAX_FRAME:
            raise WireError('a frame of %d bytes, above the %d allowed' % (length, MAX_FRAME), FRAME_SIZE_ERROR)
        payload = self._read(length)
        if not size_fits(kind, length):
            raise WireError('a frame of type %d and %d bytes' % (kind, length), FRAME_SIZE_ERROR)
        return kind, flags, stream & 0x7fffffff, payload

    def _read(self, size):
        while len(self.received) < size:
            self._bound()
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('the peer closed the connection')
            self.received += chunk
        found, self.received = self.received[:size], self.received[size:]
        return found

    def _bound(self):
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout('timed out')
            self.sock.settimeout(left)
