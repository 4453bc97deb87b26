"""The bytes of one gRPC call, grpc.health.v1.Health/Check, that podnet's
probe client (module_utils/podnet/pods/grpc_health.py) and podnet-agnhost's
grpc-health-checking server both need, h2_connection.py carrying them over
HTTP/2:
- HPACK (RFC 7541; section numbers below are its): the whole decoder
  (static and dynamic tables, Huffman), since real peers index and
  Huffman-code their headers; an encoder of literals without indexing or
  Huffman, which every decoder reads;
- the call's headers and trailers, as gRPC's PROTOCOL-HTTP2 gives them;
- the gRPC message prefix, and the call's two protobuf messages.

Written by hand: podnet's dependencies are fixed (ansible-core, pyroute2),
and no maintained codec (hpack, h2, grpcio, protobuf) is among them; so it
holds what this one call needs, no more. Standard library only.

It lives beside podnet-agnhost because a pod sees only this folder of
podnet's; module_utils/podnet/pods/grpc_codec.py is a link to this file,
so that modules ship the same code.
"""
import struct
from urllib.parse import unquote

CHECK, WATCH = '/grpc.health.v1.Health/Check', '/grpc.health.v1.Health/Watch'
GRPC_CONTENT_TYPE = 'application/grpc'
GRPC_CODES = ('OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
              'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED',
              'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED')
SERVING_STATUSES = ('UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN')  # HealthCheckResponse.ServingStatus
SERVING = 1


class CodecError(ValueError):
    """Bytes this codec cannot read: a malformed header block (HTTP/2's
    COMPRESSION_ERROR), gRPC message or protobuf."""


def name_of(names, number):
    """A code's name in names, or the number when it has none there."""
    return names[number] if 0 <= number < len(names) else str(number)


# --- HPACK ----------------------------------------------------------------

TABLE_SIZE = 4096  # SETTINGS_HEADER_TABLE_SIZE's default, which neither side changes
STATIC_TABLE = (  # Appendix A: index 1 first
    (':authority', ''), (':method', 'GET'), (':method', 'POST'), (':path', '/'), (':path', '/index.html'),
    (':scheme', 'http'), (':scheme', 'https'), (':status', '200'), (':status', '204'), (':status', '206'),
    (':status', '304'), (':status', '400'), (':status', '404'), (':status', '500'), ('accept-charset', ''),
    ('accept-encoding', 'gzip, deflate'), ('accept-language', ''), ('accept-ranges', ''), ('accept', ''),
    ('access-control-allow-origin', ''), ('age', ''), ('allow', ''), ('authorization', ''),
    ('cache-control', ''), ('content-disposition', ''), ('content-encoding', ''), ('content-language', ''),
    ('content-length', ''), ('content-location', ''), ('content-range', ''), ('content-type', ''),
    ('cookie', ''), ('date', ''), ('etag', ''), ('expect', ''), ('expires', ''), ('from', ''), ('host', ''),
    ('if-match', ''), ('if-modified-since', ''), ('if-none-match', ''), ('if-range', ''),
    ('if-unmodified-since', ''), ('last-modified', ''), ('link', ''), ('location', ''), ('max-forwards', ''),
    ('proxy-authenticate', ''), ('proxy-authorization', ''), ('range', ''), ('referer', ''), ('refresh', ''),
    ('retry-after', ''), ('server', ''), ('set-cookie', ''), ('strict-transport-security', ''),
    ('transfer-encoding', ''), ('user-agent', ''), ('vary', ''), ('via', ''), ('www-authenticate', ''))
ENTRY_OVERHEAD = 32  # what an entry costs in the dynamic table beyond its name and value (4.1)

# Appendix B's Huffman code, as the bit length of each symbol's code (0-255,
# then EOS). The code is canonical: the codes of one length follow each
# other in symbol order, and each length's first code comes right after the
# last code one bit shorter, so the lengths alone give every code.
HUFFMAN_LENGTHS = (
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30)
EOS = 256


def canonical_codes(lengths):
    """{(bit length, code): symbol} of the canonical code with these lengths."""
    codes, code, last = {}, 0, 0
    for length, symbol in sorted((length, symbol) for symbol, length in enumerate(lengths)):
        code <<= length - last
        codes[length, code] = symbol
        code, last = code + 1, length
    return codes


HUFFMAN_CODES = canonical_codes(HUFFMAN_LENGTHS)


def huffman_decode(data):
    """The octets a Huffman-coded string stands for (5.2): bit by bit, which
    is slow but fine for a header or two; the padding must be the shortest
    prefix of EOS that fills the last octet."""
    decoded, code, length = bytearray(), 0, 0
    for byte in data:
        for shift in range(7, -1, -1):
            code, length = code << 1 | byte >> shift & 1, length + 1
            symbol = HUFFMAN_CODES.get((length, code))
            if symbol == EOS:
                raise CodecError('EOS inside a Huffman string')
            if symbol is not None:
                decoded.append(symbol)
                code, length = 0, 0
    if length > 7 or code != (1 << length) - 1:
        raise CodecError('a Huffman string padded with other than EOS')
    return bytes(decoded)


def decode_integer(block, at, prefix):
    """(value, position after it) of the integer with a prefix-bit prefix
    at block[at] (5.1): past a full prefix, a varint adds to it."""
    mask = (1 << prefix) - 1
    if at >= len(block):
        raise CodecError('a header block cut short')
    if block[at] & mask < mask:
        return block[at] & mask, at + 1
    more, at = decode_varint(block, at + 1)
    return mask + more, at


def encode_integer(value, prefix, first=0):
    """value with a prefix-bit prefix; first: the bits above the prefix."""
    mask = (1 << prefix) - 1
    if value < mask:
        return bytes([first | value])
    return bytes([first | mask]) + encode_varint(value - mask)


def decode_string(block, at):
    """(text, position after it) of the string literal at block[at] (5.2),
    latin-1 decoded, so that any octets survive."""
    length, start = decode_integer(block, at, 7)
    if start + length > len(block):
        raise CodecError('a string runs past its header block')
    raw = block[start:start + length]
    return (huffman_decode(raw) if block[at] & 0x80 else raw).decode('latin-1'), start + length


class Decoder:
    """The decoding context of the header blocks one peer sends on one
    connection: its dynamic table, newest entry first. limit: the
    SETTINGS_HEADER_TABLE_SIZE this side allows."""

    def __init__(self, limit=TABLE_SIZE):
        self.table, self.size, self.limit, self.max_size = [], 0, limit, limit

    def decode(self, block):
        """[(name, value)] of a header block (section 6)."""
        headers, at = [], 0
        while at < len(block):
            if block[at] & 0x80:  # indexed
                index, at = decode_integer(block, at, 7)
                headers.append(self._entry(index))
            elif block[at] & 0x40:  # literal with incremental indexing
                name, value, at = self._literal(block, at, 6)
                self._add(name, value)
                headers.append((name, value))
            elif block[at] & 0x20:  # dynamic table size update
                if headers:
                    raise CodecError('a table size update after a header')
                self.max_size, at = decode_integer(block, at, 5)
                if self.max_size > self.limit:
                    raise CodecError('a table size above %d' % self.limit)
                self._evict(0)
            else:  # literal without indexing, or never indexed
                name, value, at = self._literal(block, at, 4)
                headers.append((name, value))
        return headers

    def _literal(self, block, at, prefix):
        index, at = decode_integer(block, at, prefix)
        if index:
            name = self._entry(index)[0]
        else:
            name, at = decode_string(block, at)
        value, at = decode_string(block, at)
        return name, value, at

    def _entry(self, index):
        if 0 < index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        if len(STATIC_TABLE) < index <= len(STATIC_TABLE) + len(self.table):
            return self.table[index - len(STATIC_TABLE) - 1]
        raise CodecError('no header table entry %d' % index)

    def _add(self, name, value):
        size = len(name) + len(value) + ENTRY_OVERHEAD
        self._evict(size)
        if size <= self.max_size:  # a larger entry empties the table and is not kept (4.4)
            self.table.insert(0, (name, value))
            self.size += size

    def _evict(self, room):
        """Drop the oldest entries until room more fits (4.3, 4.4)."""
        while self.table and self.size + room > self.max_size:
            name, value = self.table.pop()
            self.size -= len(name) + len(value) + ENTRY_OVERHEAD


def encode_headers(headers):
    """A header block of (name, value) pairs, each a literal without
    indexing with a new name, not Huffman-coded (6.2.2)."""
    block = bytearray()
    for name, value in headers:
        block.append(0)
        for text in (name, value):
            raw = text.encode('latin-1')
            block += encode_integer(len(raw), 7) + raw
    return bytes(block)


# --- the call -----------------------------------------------------------

def authority(host, port):
    return '[%s]:%d' % (host, port) if ':' in host else '%s:%d' % (host, port)


def request_headers(host, port, user_agent):
    """The headers of a Check call to host:port."""
    return [(':method', 'POST'), (':scheme', 'http'), (':path', CHECK), (':authority', authority(host, port)),
            ('content-type', GRPC_CONTENT_TYPE), ('te', 'trailers'), ('user-agent', user_agent)]


RESPONSE_HEADERS = [(':status', '200'), ('content-type', GRPC_CONTENT_TYPE)]


def trailers(code, message=''):
    """The trailers that end a call with a grpc-status code; grpc-message is
    percent-encoded, as gRPC wants anything outside printable ASCII."""
    found = [('grpc-status', str(code))]
    if message:
        found.append(('grpc-message', ''.join(
            char if ' ' <= char <= '~' and char != '%' else ''.join('%%%02X' % octet for octet in char.encode())
            for char in message)))
    return found


def status_message(found):
    """The grpc-message of {trailer: value}, decoded, or ''."""
    return unquote(found.get('grpc-message', ''), errors='replace')


# --- gRPC messages and protobuf ------------------------------------------

def message(payload):
    """A gRPC length-prefixed message, not compressed."""
    return b'\0' + struct.pack('>I', len(payload)) + payload


def first_message(data):
    """The payload of the first gRPC message in a stream's data."""
    length = struct.unpack('>I', data[1:5])[0] if len(data) >= 5 else len(data)
    if len(data) < 5 + length:
        raise CodecError('a gRPC message cut short')
    if data[0]:
        raise CodecError('a compressed gRPC message (no compression was offered)')
    return data[5:5 + length]


def encode_varint(value):
    """Base 128, least significant group first, as protobuf and HPACK write integers."""
    encoded = bytearray()
    while value >= 0x80:
        encoded.append(value & 0x7f | 0x80)
        value >>= 7
    return bytes(encoded + bytes([value]))


def decode_varint(data, at):
    value, shift = 0, 0
    while at < len(data) and shift < 64:
        value, at, shift = value | (data[at] & 0x7f) << shift, at + 1, shift + 7
        if not data[at - 1] & 0x80:
            return value, at
    raise CodecError('a varint cut short')


def field_one(payload, wire_type, default):
    """The last value of a message's field 1 (varint or length-delimited,
    as wire_type says), or default; other fields are passed over."""
    found, at = default, 0
    while at < len(payload):
        key, at = decode_varint(payload, at)
        if key & 7 in (1, 5):  # 64- and 32-bit
            value, at = None, at + (8 if key & 7 == 1 else 4)
        elif key & 7 == 0:
            value, at = decode_varint(payload, at)
        elif key & 7 == 2:
            length, at = decode_varint(payload, at)
            value, at = payload[at:at + length], at + length
        else:
            raise CodecError('protobuf wire type %d' % (key & 7))
        if at > len(payload):
            raise CodecError('a protobuf field cut short')
        if key >> 3 == 1:
            if key & 7 != wire_type:
                raise CodecError('protobuf field 1 of wire type %d, not %d' % (key & 7, wire_type))
            found = value
    return found


def health_request(service):
    """HealthCheckRequest{service: 1 string}: empty for the server as a whole."""
    raw = service.encode('utf-8')
    return b'\x0a' + encode_varint(len(raw)) + raw if raw else b''


def requested_service(payload):
    try:
        return field_one(payload, 2, b'').decode('utf-8')
    except UnicodeDecodeError:
        raise CodecError('a service name that is not UTF-8') from None


def health_response(status):
    """HealthCheckResponse{status: 1 enum}."""
    return b'\x08' + encode_varint(status) if status else b''


def served_status(payload):
    return field_one(payload, 0, 0)
