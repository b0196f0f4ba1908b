"""``ponder serve``: check everything a user can get wrong, then start uvicorn.

The checks run before any model is loaded or assembled, which can take minutes: the bind
address's safety, each model name, the embedded engine's presence, and the port. The models
then load in the background while the server already answers ``/health/live``
(``server/preload.py``); one that fails to load (a corrupt GGUF) stops the server, which
exits with one line and a non-zero code.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import socket
from typing import Any, cast

import click

from ponder import logs
from ponder.cli.errors import CommandError, describe
from ponder.config import PonderConfig
from ponder.errors import PonderError
from ponder.logs import LogFormat
from ponder.progress import download_bar
from ponder.routing.registry import BackendRegistry, embedded_backend_class

# How long an idle client connection is kept. Longer than HTTP clients keep theirs (httpx,
# so the openai SDK: 5 s, uvicorn's own default too): at equal times a client reuses a
# connection just as the server closes it, and the request fails.
KEEP_ALIVE_SECONDS = 30


@click.command()
@click.option("--host", default=None, help="Interface to bind (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from config: 8000).")
@click.option(
    "--model", "-m", "models", multiple=True, help="Load this model at start-up (repeatable)."
)
@click.option("--max-n", type=int, default=None, help="Largest n a request may ask for.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Server processes. Each loads its own copy of an embedded model; for a gateway in "
    "front of remote endpoints, about one per core. They share one ledger (the database).",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Log every request (uvicorn's access log, and Ponder's record of each chat "
    "request: id, key, model, strategy, status, tokens).",
)
@click.option(
    "--allow-unauthenticated",
    is_flag=True,
    help="Serve on a non-loopback address with no API keys (anyone who can reach it may use it).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    models: tuple[str, ...],
    max_n: int | None,
    workers: int,
    access_log: bool,
    allow_unauthenticated: bool,
) -> None:
    """Start the OpenAI-compatible server."""
    import uvicorn

    config: PonderConfig = ctx.obj
    log_format = cast(LogFormat, ctx.meta.get("log_format", "text"))
    logs.configure(logging.INFO, log_format)  # a server says what it serves
    if not access_log:  # nor Ponder's own record of each request
        logging.getLogger("ponder.requests").setLevel(logging.WARNING)
    os.environ["PONDER_LOG_FORMAT"] = log_format  # for --workers' processes
    bind_host, bind_port = host or config.host, port or config.port
    if not _loopback(bind_host) and not allow_unauthenticated and not _has_credentials(config):
        raise CommandError(
            f"refusing to serve on {bind_host} with no API keys: anyone who can reach it could "
            "use it. Create one (ponder teams create T && ponder keys create --team T --name N), "
            "set PONDER_ADMIN_KEY, or pass --allow-unauthenticated"
        )
    if workers > 1:
        _check_shared_database(config, workers)
    if max_n is not None:
        config = config.replace(max_n=max_n)
    preload = list(models) or [config.default_model]
    registry = BackendRegistry(config)
    kinds = {name: registry.kind_of(registry.canonical(name)) for name in preload}
    if any(kind != "remote" for kind in kinds.values()):
        embedded_backend_class()  # llama.cpp missing: say which extra to install, now
    check_port_free(bind_host, bind_port)
    for name, kind in kinds.items():
        if kind == "bundled":
            registry.store.ensure(registry.canonical(name), download_bar(f"assembling {name}"))
    options: dict[str, Any] = {
        "host": bind_host,
        "port": bind_port,
        "log_level": "info",
        "log_config": None,  # ponder.logs configured it (in each worker: the factory)
        "access_log": access_log,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "timeout_graceful_shutdown": config.shutdown_grace_seconds,
    }
    if workers > 1:
        # uvicorn starts workers by import string: each builds its own app from the same
        # settings, left in the environment (see ponder.server.factory).
        os.environ["PONDER_CONFIG"] = str(ctx.meta.get("config_path") or "")
        os.environ["PONDER_PRELOAD"] = ",".join(preload)
        if max_n is not None:
            os.environ["PONDER_MAX_N"] = str(max_n)
        _run_workers(
            uvicorn.Config("ponder.server.factory:app", factory=True, workers=workers, **options)
        )
        return
    from ponder.server.app import create_app

    stopper = StopOnPreloadFailure()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config, preload=preload, on_preload_failure=stopper), **options)
    )
    stopper.server = server
    server.run()
    if stopper.failure is not None:
        raise CommandError(preload_failure_message(*stopper.failure))
    if not server.started:  # uvicorn has logged why (as its own run() would, exit 3)
        raise click.exceptions.Exit(STARTUP_FAILURE)


# uvicorn's exit code for a server, or a worker, that failed before it served.
STARTUP_FAILURE = 3


class StopOnPreloadFailure:
    """Ends the server when a model it preloads fails to load, keeping the error for the
    one line ``ponder serve`` exits with (a server that cannot serve its model is down, and
    an orchestrator should see it exit rather than probe a server that is never ready)."""

    def __init__(self) -> None:
        self.server: Any = None  # the uvicorn.Server, set once built
        self.failure: tuple[str, BaseException] | None = None

    def __call__(self, name: str, error: BaseException) -> None:
        if self.failure is None:
            self.failure = (name, error)
        if self.server is not None:
            self.server.should_exit = True  # a graceful stop, as on SIGTERM


def preload_failure_message(name: str, error: BaseException) -> str:
    if isinstance(error, PonderError):
        return f"could not load model {name}: {describe(error)}"
    return f"could not load model {name}: {type(error).__name__}: {error}"


def _run_workers(config: Any) -> None:
    """uvicorn's supervisor, as ``uvicorn.run`` starts it, then the exit it does not give:
    a worker whose preload failed exits with STARTUP_FAILURE (``server/factory.py``), the
    supervisor stops, and so does ``ponder serve``, non-zero."""
    from uvicorn.supervisors import Multiprocess

    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        raise CommandError("a worker could not start (its error is above); the server has stopped")


def check_port_free(host: str, port: int) -> None:
    """Fail now, in one line, if the address cannot be bound (rather than after loading)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port whose old connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"port {port} on {host} is already in use: stop what holds it, or pass "
                    "--port with a free one"
                ) from exc
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _check_shared_database(config: PonderConfig, workers: int) -> None:
    """Workers keep one ledger only in a database they share: a file (WAL) or a server."""
    from ponder.tenancy import resolve_database_url

    if ":memory:" in resolve_database_url(config):
        raise CommandError(
            f"--workers {workers} needs a database the workers share, and ':memory:' is one "
            "per process: set database_url to a file (sqlite:///path) or a PostgreSQL URL"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _has_credentials(config: PonderConfig) -> bool:
    """An admin key in the environment, or any live API key in the database."""
    from ponder.tenancy import TenancyStore, resolve_database_url

    if os.environ.get("PONDER_ADMIN_KEY"):
        return True

    async def any_key() -> bool:
        store = await TenancyStore.open(resolve_database_url(config))
        try:
            return await store.has_keys()
        finally:
            await store.aclose()

    return asyncio.run(any_key())
