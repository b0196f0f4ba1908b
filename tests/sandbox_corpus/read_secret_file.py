"""read: the server's trace database (a host file holding a secret), by every read primitive.

Tries open(), os.open/os.read, io.FileIO, pathlib, mmap, os.sendfile into a pipe, linecache,
and paths that reach the file by a detour (/work/../.., doubled slashes).
"""

import io
import linecache
import mmap
import os
import pathlib
import re

SECRET_FILE = "__SECRET_FILE__"


def strings(data):
    return " ".join(m.decode() for m in re.findall(rb"[ -~]{6,}", data))[-600:]


def via_open(path):
    with open(path, "rb") as f:
        return f.read()


def via_os_open(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 20)
    finally:
        os.close(fd)


def via_fileio(path):
    with io.FileIO(path, "r") as f:
        return f.readall()


def via_pathlib(path):
    return pathlib.Path(path).read_bytes()


def via_mmap(path):
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        return bytes(m)


def via_sendfile(path):
    r, w = os.pipe()
    fd = os.open(path, os.O_RDONLY)
    try:
        n = os.sendfile(w, fd, 0, 60000)
        return os.read(r, n)
    finally:
        for x in (r, w, fd):
            os.close(x)


def via_linecache(path):
    return "".join(linecache.getlines(path)).encode("utf-8", "replace") or None


detours = [SECRET_FILE, "/work/" + "../" * 8 + SECRET_FILE.lstrip("/"), "/" + SECRET_FILE]
detours.append(os.path.join(os.getcwd(), "../" * 16, SECRET_FILE.lstrip("/")))
found = []
for path in detours:
    for reader in (
        via_open,
        via_os_open,
        via_fileio,
        via_pathlib,
        via_mmap,
        via_sendfile,
        via_linecache,
    ):
        try:
            data = reader(path)
        except Exception as exc:
            print(f"{reader.__name__}({path[:60]}): {type(exc).__name__}: {exc}")
            continue
        if data:
            found.append(f"{reader.__name__} read {len(data)} bytes: {strings(data)}")
            break
    if found:
        break
if found:
    print("ESCAPED: " + found[0])
