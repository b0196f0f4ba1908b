"""network: a TCP connection to a listener on the host's loopback, and data sent over it.

Tries create_connection, a bare socket, "localhost" by name and the 127.1 / 0.0.0.0 aliases.
"""

import socket
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

PORT = int("__TCP_PORT__")
wins = []
for host in ("127.0.0.1", "localhost", "127.1", "0.0.0.0"):
    try:
        with socket.create_connection((host, PORT), timeout=1) as s:
            s.sendall(b"exfiltrated over tcp via " + host.encode())
        wins.append(host)
    except Exception as exc:
        print(f"connect {host}:{PORT}: {type(exc).__name__}: {exc}")
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1)
    code = s.connect_ex(("127.0.0.1", PORT))
    print(f"connect_ex: {code}")
    if code == 0:
        s.send(b"connect_ex")
        wins.append("connect_ex")
    s.close()
except Exception as exc:
    print(f"socket(): {type(exc).__name__}: {exc}")
if wins:
    print(f"ESCAPED: reached TCP port {PORT} via " + ", ".join(wins))
