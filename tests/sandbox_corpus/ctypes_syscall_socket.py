"""ctypes: sockets through libc, not the socket module: socket/connect/send on the loopback
TCP listener, and a netlink socket.
"""

import os
import socket
import struct
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

PORT = int("__TCP_PORT__")
libc = ctypes.CDLL(None, use_errno=True)
wins = []
fd = libc.socket(2, 1, 0)  # AF_INET, SOCK_STREAM
if fd < 0:
    print(f"libc socket(AF_INET): {os.strerror(ctypes.get_errno())}")
else:
    addr = struct.pack("=HH4s8x", 2, socket.htons(PORT), socket.inet_aton("127.0.0.1"))
    if libc.connect(fd, addr, len(addr)) == 0:
        message = b"exfiltrated through libc"
        libc.send(fd, message, len(message), 0)
        wins.append(f"connected to 127.0.0.1:{PORT}")
    else:
        print(f"libc connect: {os.strerror(ctypes.get_errno())}")
    os.close(fd)
if os.uname().machine == "x86_64":
    fd = libc.syscall(41, 10, 2, 0)  # raw socket(AF_INET6, SOCK_DGRAM)
    if fd >= 0:
        wins.append("raw syscall socket(AF_INET6)")
        os.close(fd)
    else:
        print(f"raw socket(AF_INET6): {os.strerror(ctypes.get_errno())}")
fd = libc.socket(16, 3, 0)  # AF_NETLINK, SOCK_RAW, NETLINK_ROUTE
if fd >= 0:
    wins.append("netlink socket")
    os.close(fd)
else:
    print(f"libc socket(AF_NETLINK): {os.strerror(ctypes.get_errno())}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
