"""network: rtnetlink: dump the host's network interfaces (a read that maps the network), and
if_nameindex.
"""

import socket
import struct
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

names = []
try:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
    s.bind((0, 0))
    # nlmsghdr(len, RTM_GETLINK=18, NLM_F_REQUEST|NLM_F_DUMP, seq, pid) + ifinfomsg
    s.send(struct.pack("=LHHLL", 32, 18, 0x301, 1, 0) + struct.pack("=BxHiII", 0, 0, 0, 0, 0))
    s.settimeout(1)
    done = False
    while not done:
        data = s.recv(65536)
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=LH", data, offset)
            if kind == 3 or length < 16:  # NLMSG_DONE
                done = True
                break
            attr = offset + 32
            while attr + 4 <= offset + length:
                alen, atype = struct.unpack_from("=HH", data, attr)
                if alen < 4:
                    break
                if atype == 3:  # IFLA_IFNAME
                    names.append(data[attr + 4 : attr + alen].rstrip(b"\0").decode())
                attr += (alen + 3) & ~3
            offset += (length + 3) & ~3
    s.close()
except OSError as exc:
    print(f"netlink: {exc.strerror or exc}")
try:
    names += [name for _, name in socket.if_nameindex()]
except OSError as exc:
    print(f"if_nameindex: {exc.strerror}")
print("interfaces:", sorted(set(names)))
if set(names) - {"lo"}:
    print("ESCAPED: the host's interfaces are visible: " + ", ".join(sorted(set(names))))
