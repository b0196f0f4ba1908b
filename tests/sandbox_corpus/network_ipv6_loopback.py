"""network: the listeners over IPv6: ::1 and the IPv4-mapped ::ffff:127.0.0.1 (TCP and UDP)."""

import socket
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

TCP = int("__TCP_PORT__")
UDP = int("__UDP_PORT__")
wins = []
for host in ("::1", "::ffff:127.0.0.1"):
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect((host, TCP))
        s.sendall(b"exfiltrated over tcp6 to " + host.encode())
        s.close()
        wins.append(f"tcp {host}")
    except OSError as exc:
        print(f"tcp6 {host}: {exc.strerror or exc}")
try:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.sendto(b"exfiltrated over udp6", ("::ffff:127.0.0.1", UDP))
    wins.append("udp ::ffff:127.0.0.1")
    s.close()
except OSError as exc:
    print(f"udp6: {exc.strerror}")
if wins:
    print("ESCAPED: reached the host over IPv6: " + ", ".join(wins))
