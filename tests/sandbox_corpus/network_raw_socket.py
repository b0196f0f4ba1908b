"""network: raw IP sockets: a hand-built UDP datagram to the loopback listener, an ICMP echo,
and IP_HDRINCL packets.
"""

import socket
import struct
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

PORT = int("__UDP_PORT__")
PAYLOAD = b"exfiltrated over a raw socket"


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ip_header(proto, length):
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + length,
        1,
        0,
        64,
        proto,
        0,
        socket.inet_aton("127.0.0.1"),
        socket.inet_aton("127.0.0.1"),
    )
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:]


udp = struct.pack("!HHHH", 40000, PORT, 8 + len(PAYLOAD), 0) + PAYLOAD
wins = []
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    s.sendto(udp, ("127.0.0.1", 0))
    wins.append("SOCK_RAW/IPPROTO_UDP datagram")
    s.close()
except OSError as exc:
    print(f"raw udp: {exc.strerror}")
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(ip_header(socket.IPPROTO_UDP, len(udp)) + udp, ("127.0.0.1", 0))
    wins.append("IPPROTO_RAW packet with our own IP header")
    s.close()
except OSError as exc:
    print(f"IPPROTO_RAW: {exc.strerror}")
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    body = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping"
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    s.sendto(body, ("127.0.0.1", 0))
    wins.append("ICMP echo")
    s.close()
except OSError as exc:
    print(f"raw icmp: {exc.strerror}")
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    s.sendto(struct.pack("!BBHHH", 8, 0, 0, 1, 1), ("127.0.0.1", 0))
    wins.append("unprivileged ICMP socket")
    s.close()
except OSError as exc:
    print(f"ping socket: {exc.strerror}")
if wins:
    print("ESCAPED: sent raw packets: " + ", ".join(wins))
