"""network: which socket families the kernel hands out (AF_INET/6, PACKET, NETLINK, VSOCK,
ALG, XDP): each one is attack surface. Creates sockets, sends nothing.

Families whose first use makes the kernel load a module (RDS, TIPC, X25, ...) are left out,
so that an unconfined run does not change the host's kernel.
"""

import socket
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

families = {
    "AF_INET": 2,
    "AF_INET6": 10,
    "AF_NETLINK": 16,
    "AF_PACKET": 17,
    "AF_ALG": 38,
    "AF_VSOCK": 40,
    "AF_XDP": 44,
}
opened = []
for name, number in families.items():
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW, socket.SOCK_SEQPACKET):
        try:
            socket.socket(number, kind).close()
        except OSError:
            continue
        opened.append(name)
        break
print("families:", opened)
if opened:
    print("ESCAPED: could create sockets of " + ", ".join(opened))
