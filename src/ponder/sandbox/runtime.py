"""The files a sandboxed interpreter needs, and nothing more: the executable, its standard
library (without site-packages), and the shared libraries that it and the standard library's
extension modules link against.

The libraries are found by asking the dynamic loader (``ldd``) once, at start-up. Their
directories are mounted read-only, so the loader's default search path finds them without
``/etc/ld.so.cache``; ``/etc`` itself is never mounted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ponder.errors import SandboxUnavailableError

_LDD_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class PythonRuntime:
    executable: Path  # the real interpreter binary, symlinks resolved
    stdlib: Path  # the standard library directory
    hidden: tuple[Path, ...]  # directories inside the standard library to mask (site-packages)
    files: tuple[Path, ...]  # single files to mount at their own path (the loader, libpython)
    library_dirs: tuple[Path, ...]  # directories of shared libraries, mounted read-only


def discover_runtime(python: Path | None = None) -> PythonRuntime:
    """What to mount for ``python`` (default: the interpreter Ponder runs on)."""
    executable = Path(os.path.realpath(python or _base_executable()))
    if python is None:
        stdlib = Path(os.path.realpath(sysconfig.get_paths()["stdlib"]))
    else:
        stdlib = Path(
            _ask(
                executable,
                "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
            ).strip()
        )
    if not (stdlib / "os.py").is_file():
        raise SandboxUnavailableError(
            f"the sandbox cannot find the standard library of {executable} (looked in {stdlib})",
            fix="set [sandbox] python to an interpreter with a standard library",
        )
    extensions = sorted((stdlib / "lib-dynload").glob("*.so"))
    libraries = _linked_libraries([executable, *extensions])
    files: set[Path] = set()
    library_dirs: set[Path] = set()
    for library in libraries:
        real = Path(os.path.realpath(library))
        if real.is_relative_to(stdlib) or real == executable:
            continue
        library_dirs.add(real.parent)
        if library != real:
            files.add(library)  # the path the binary names (the loader's, for one)
    hidden = tuple(p for p in (stdlib / "site-packages", stdlib / "dist-packages") if p.is_dir())
    return PythonRuntime(
        executable=executable,
        stdlib=stdlib,
        hidden=hidden,
        files=tuple(sorted(files)),
        library_dirs=tuple(sorted(library_dirs)),
    )


def _base_executable() -> str:
    # In a virtual environment sys.executable is a link into the venv, whose pyvenv.cfg and
    # site-packages the sandbox must not see; the base interpreter is what runs programs.
    return getattr(sys, "_base_executable", None) or sys.executable


def _linked_libraries(binaries: list[Path]) -> list[Path]:
    try:
        done = subprocess.run(
            ["ldd", *map(str, binaries)],
            capture_output=True,
            text=True,
            timeout=_LDD_TIMEOUT,
            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailableError(
            f"the sandbox cannot list the interpreter's shared libraries: ldd failed ({exc})",
            fix="install ldd (Debian: libc-bin)",
        ) from exc
    found: set[Path] = set()
    for line in done.stdout.splitlines():
        parts = line.split()
        if "=>" in parts:
            target = parts[parts.index("=>") + 1]
            if target.startswith("/"):
                found.add(Path(target))
        elif parts and parts[0].startswith("/") and not parts[0].endswith(":"):
            found.add(Path(parts[0]))  # the loader itself: "/lib64/ld-linux-x86-64.so.2 (...)"
    return sorted(found)


def _ask(executable: Path, code: str) -> str:
    try:
        return subprocess.run(
            [str(executable), "-I", "-S", "-c", code],
            capture_output=True,
            text=True,
            timeout=_LDD_TIMEOUT,
            check=True,
            env={},
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxUnavailableError(
            f"the sandbox's interpreter {executable} does not run: {exc}",
            fix="set [sandbox] python to a working interpreter",
        ) from exc
