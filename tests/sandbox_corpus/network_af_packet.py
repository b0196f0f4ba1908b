"""network: an AF_PACKET socket on "lo" injecting a whole Ethernet frame (IPv4/UDP to the
loopback listener), and a sniffing read of whatever crosses the interface.
"""

import socket
import struct
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

PORT = int("__UDP_PORT__")
PAYLOAD = b"exfiltrated through AF_PACKET"


def checksum(data):
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


udp = struct.pack("!HHHH", 40001, PORT, 8 + len(PAYLOAD), 0) + PAYLOAD
ip = struct.pack(
    "!BBHHHBBH4s4s",
    0x45,
    0,
    20 + len(udp),
    2,
    0,
    64,
    17,
    0,
    socket.inet_aton("127.0.0.1"),
    socket.inet_aton("127.0.0.1"),
)
ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
frame = b"\0" * 12 + struct.pack("!H", 0x0800) + ip + udp
wins = []
try:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind(("lo", 0))
    s.send(frame)
    wins.append("injected a frame on lo")
    s.settimeout(0.3)
    try:
        data = s.recv(65536)
        wins.append(f"sniffed a {len(data)}-byte frame")
    except OSError:
        pass
    s.close()
except OSError as exc:
    print(f"AF_PACKET: {exc.strerror}")
if wins:
    print("ESCAPED: " + ", ".join(wins))
