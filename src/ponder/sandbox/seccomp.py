"""The seccomp filter every sandboxed program runs under, compiled by libseccomp.

The namespaces already hide the host; the filter takes away what a program would need to
attack the kernel or multiply itself, whatever uid it runs as:

- no new processes: ``fork``, ``vfork`` and a ``clone`` without ``CLONE_THREAD`` fail with
  EPERM (threads still work; ``clone3`` answers ENOSYS so the C library falls back to
  ``clone``). The kernel's RLIMIT_NPROC does not apply to uid 0, so this is what stops a fork
  bomb when Ponder runs as root;
- no sockets but Unix ones (the network namespace has no route out either);
- no ``memfd_create``: memory written into a memfd is not address space, so RLIMIT_AS would
  not bound it;
- none of the kernel's large attack surfaces: ``ptrace``, other processes' memory, ``bpf``,
  ``perf_event_open``, ``userfaultfd``, ``io_uring``, keyrings, modules, mounts and
  namespaces, file handles, clocks, terminal injection (``TIOCSTI``).

Calls from another ABI (32-bit ``int 0x80`` on x86-64) kill the process: libseccomp's
bad-architecture action.

The filter is built with libseccomp (through the ``pyseccomp`` ctypes binding) rather than
as hand-written BPF, and handed to bwrap, which loads it just before it starts the program.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from ponder.errors import SandboxUnavailableError

CLONE_THREAD = 0x00010000
TIOCSTI = 0x5412
TIOCLINUX = 0x541C

DENIED = (
    "fork",
    "vfork",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "pidfd_open",
    "pidfd_getfd",
    "pidfd_send_signal",
    "kcmp",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    "fanotify_init",
    "mknod",
    "mknodat",
    "syslog",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "sethostname",
    "setdomainname",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "quotactl",
    "lookup_dcookie",
    "uselib",
    "personality",
    # Memory written to a memfd is not address space: RLIMIT_AS would not bound it.
    "memfd_create",
    "memfd_secret",
)


def build_filter() -> bytes:
    """The compiled BPF program, for bwrap's ``--seccomp FD``."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError, RuntimeError) as exc:
        raise SandboxUnavailableError(
            f"the sandbox's seccomp filter cannot be built: libseccomp is not available ({exc})",
            fix="pip install pyseccomp and install libseccomp (Debian: libseccomp2), "
            "or set [sandbox] seccomp = false to run without the filter",
        ) from exc
    try:
        flt = sc.SyscallFilter(sc.ALLOW)
        flags_arg = 1 if sc.system_arch() in (sc.Arch.S390, sc.Arch.S390X) else 0
        eperm = sc.ERRNO(errno.EPERM)
        for name in DENIED:
            _deny(sc, flt, eperm, name)
        # A clone that does not share the thread group starts a process: refused.
        _deny(sc, flt, eperm, "clone", sc.Arg(flags_arg, sc.MASKED_EQ, CLONE_THREAD, 0))
        _deny(sc, flt, sc.ERRNO(errno.ENOSYS), "clone3")
        _deny(sc, flt, sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
        for request in (TIOCSTI, TIOCLINUX):
            _deny(sc, flt, eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
        return _export(flt)
    except OSError as exc:
        raise SandboxUnavailableError(
            f"the sandbox's seccomp filter cannot be built: {exc}",
            fix="update libseccomp, or set [sandbox] seccomp = false",
        ) from exc


def _deny(sc: Any, flt: Any, action: int, name: str, *args: Any) -> None:
    try:
        number = sc.resolve_syscall(sc.Arch.NATIVE, name)
    except (OSError, ValueError):
        return  # not a system call on this architecture
    if number < 0:
        return
    flt.add_rule(action, number, *args)


def _export(flt: Any) -> bytes:
    fd = os.memfd_create("ponder-seccomp", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "wb") as file:
            flt.export_bpf(file)
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)
