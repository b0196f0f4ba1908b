"""network: UDP datagrams to a loopback listener (sendto, a connected socket, sendmsg)."""

import socket
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

PORT = int("__UDP_PORT__")
wins = []
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for label, send in (
        ("sendto", lambda: s.sendto(b"exfiltrated over udp", ("127.0.0.1", PORT))),
        ("sendmsg", lambda: s.sendmsg([b"via sendmsg"], [], 0, ("127.0.0.1", PORT))),
    ):
        try:
            print(f"{label}: {send()} bytes")
            wins.append(label)
        except OSError as exc:
            print(f"{label}: {exc.strerror}")
    s.connect(("127.0.0.1", PORT))
    s.send(b"via a connected socket")
    wins.append("connected send")
    s.close()
except OSError as exc:
    print(f"udp socket: {exc.strerror}")
if wins:
    print(f"ESCAPED: sent UDP to port {PORT} via " + ", ".join(wins))
