"""``ponder doctor``: what works and what is missing on this machine, each problem with its
fix. Checks the configuration (and the API-key variables it names), the bundled models,
the llama.cpp build, the sandbox, the database, the server's port and the CPU. Exits 1 when
something required is broken (a check marked FAIL), 0 otherwise (warnings included)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click

from ponder.config import LoadedConfig, PonderConfig, load_layers
from ponder.errors import PonderError

Status = Literal["ok", "warn", "fail"]

# How long the database may take to answer before it counts as unreachable.
DATABASE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


def check_configuration(loaded: LoadedConfig) -> list[Check]:
    where = str(loaded.path) if loaded.path else "no file (defaults)"
    env = sorted({o.name for o in loaded.sources.values() if o.kind == "env"})
    out = [
        Check("configuration", "ok", f"{where}; from the environment: {', '.join(env) or 'none'}")
    ]
    for provider in loaded.config.providers:
        origin = loaded.origin(f"providers.{provider.name}.api_key")
        if origin.kind == "env" and provider.api_key is None:
            out.append(
                Check(
                    f"provider {provider.name}",
                    "warn",
                    f"api_key_env names {origin.name}, which is not set",
                    f"export {origin.name}=..., or drop api_key_env if the endpoint needs no key",
                )
            )
    return out


def check_models(config: PonderConfig, verify: bool) -> list[Check]:
    from ponder.engine.weights import ModelStore

    store = ModelStore(config.cache_dir)
    out = []
    for name, spec in store.specs.items():
        required = name == config.default_model
        if not store.packages_installed(spec):
            out.append(
                Check(
                    f"model {name}",
                    "fail" if required else "ok",
                    "weights not installed" + (" (the default model)" if required else ""),
                    spec.install_hint if required else None,
                )
            )
            continue
        try:
            if verify:
                store.verify(name)
            elif not store.is_assembled(spec):
                out.append(
                    Check(
                        f"model {name}",
                        "warn",
                        "installed, not assembled yet (the first start assembles it)",
                        "ponder models --verify, or let ponder serve assemble it",
                    )
                )
                continue
        except PonderError as exc:
            out.append(Check(f"model {name}", "fail", exc.message, spec.install_hint))
            continue
        out.append(Check(f"model {name}", "ok", "assembled" + (" and verified" if verify else "")))
    return out


def has_amx() -> bool:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(line.startswith("flags") and "amx_tile" in line for line in cpuinfo)
    except OSError:
        return False


def check_llama(config: PonderConfig) -> list[Check]:
    from importlib import metadata

    try:
        # Through the engine, the one layer that touches llama.cpp: this loads the native
        # library, so a broken build fails here rather than at the first request.
        from ponder.engine import llama_model  # noqa: F401
    except (ImportError, OSError):
        return [
            Check(
                "llama.cpp",
                "warn",
                "not installed: a gateway to remote endpoints only",
                'pip install "ponder[local]" for the embedded engine',
            )
        ]
    amx = has_amx()
    setting = config.engine.extra_buffers
    on = setting if setting is not None else not amx
    why = "configured" if setting is not None else ("AMX CPU" if amx else "default")
    status: Status = "warn" if on and amx else "ok"
    return [
        Check(
            "llama.cpp",
            status,
            f"llama-cpp-python {metadata.version('llama_cpp_python')}; extra buffers {'on' if on else 'off'} "
            f"({why})",
            "[engine] extra_buffers = false: AMX matrix multiply crashed on the bundled models"
            if status == "warn"
            else None,
        )
    ]


def check_sandbox(config: PonderConfig) -> list[Check]:
    from ponder.sandbox import Sandbox

    status = asyncio.run(Sandbox(config.sandbox).status())
    if not status.available:
        # Not required: the server runs, program-aided refuses and auto goes without programs.
        return [
            Check("sandbox", "warn", f"unavailable ({status.mode}): {status.detail}", status.fix)
        ]
    if status.mode == "process":
        return [Check("sandbox", "warn", f"process mode, no isolation: {status.detail}", None)]
    return [Check("sandbox", "ok", f"{status.mode}: {status.detail}")]


def check_database(config: PonderConfig) -> list[Check]:
    from ponder.config_cli import masked_url
    from ponder.tenancy import TenancyStore, resolve_database_url

    url = resolve_database_url(config)

    async def reach() -> None:
        async with asyncio.timeout(DATABASE_TIMEOUT):
            store = await TenancyStore.open(url)
            try:
                await store.has_keys()
            finally:
                await store.aclose()

    try:
        asyncio.run(reach())
    except Exception as exc:  # any failure to reach it is the finding, not a crash
        reason = exc.message if isinstance(exc, PonderError) else type(exc).__name__
        return [
            Check(
                "database",
                "fail",
                f"{masked_url(url)} unreachable: {reason}",
                "check PONDER_DATABASE_URL / database_url, and that the server is up",
            )
        ]
    return [Check("database", "ok", f"{masked_url(url)} reachable")]


def check_port(config: PonderConfig) -> list[Check]:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((config.host, config.port))
        except OSError as exc:
            return [
                Check(
                    "port",
                    "fail",
                    f"{config.host}:{config.port} cannot be bound: {exc.strerror}",
                    "stop what listens there (a running ponder serve?), or set port / --port",
                )
            ]
    return [Check("port", "ok", f"{config.host}:{config.port} is free")]


def check_cpu(config: PonderConfig) -> list[Check]:
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    count = available or os.cpu_count() or 1
    wanted = config.engine.n_threads
    if wanted is not None and wanted > count:
        return [
            Check(
                "cpu",
                "warn",
                f"[engine] n_threads = {wanted}, but {count} threads are available",
                f"set [engine] n_threads to at most {count}, or leave it unset",
            )
        ]
    return [Check("cpu", "ok", f"{count} threads available to this process")]


def run_checks(loaded: LoadedConfig, *, verify: bool = False) -> list[Check]:
    config = loaded.config
    steps: list[Callable[[], list[Check]]] = [
        lambda: check_configuration(loaded),
        lambda: check_models(config, verify),
        lambda: check_llama(config),
        lambda: check_sandbox(config),
        lambda: check_database(config),
        lambda: check_port(config),
        lambda: check_cpu(config),
    ]
    out: list[Check] = []
    for step in steps:
        out.extend(step())
    return out


LABELS = {"ok": "[ ok ]", "warn": "[warn]", "fail": "[FAIL]"}


@click.command("doctor")
@click.option("--verify", is_flag=True, help="Re-hash the assembled models (slow).")
@click.pass_context
def doctor(ctx: click.Context, verify: bool) -> None:
    """Check what works and what is missing, each with its fix; exit 1 if something
    required is broken."""
    path = ctx.meta.get("config_path")
    try:
        loaded = load_layers(Path(path) if path else None)
    except PonderError as exc:
        click.echo(f"{LABELS['fail']} configuration: {exc.message}")
        ctx.exit(1)
    checks = run_checks(loaded, verify=verify)
    for check in checks:
        click.echo(f"{LABELS[check.status]} {check.name}: {check.detail}")
        if check.fix and check.status != "ok":
            click.echo(f"       fix: {check.fix}")
    if any(c.status == "fail" for c in checks):
        ctx.exit(1)
