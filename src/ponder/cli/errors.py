"""The one place the command line turns an exception into a one-line message.

Every command lets Ponder's typed errors (``ponder.errors``) propagate; the ``ponder`` group
(:mod:`ponder.cli.group`) catches them here and prints one line that says what went wrong and
what to do, with a non-zero exit. Anything not listed is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno

import click

from ponder.errors import (
    AuthenticationError,
    BackendError,
    ConfigError,
    ModelError,
    ModelNotFoundError,
    PonderError,
    StoreUnavailableError,
    TenantNotFoundError,
)

# What to do about each kind of mistake, when the message does not already say it. The
# first class in this order that the error is an instance of gives the hint.
_HINTS: tuple[tuple[type[PonderError], str], ...] = (
    (
        ModelNotFoundError,
        "`ponder models` lists the bundled models and `ponder deployments` the configured "
        "ones; a GGUF path must exist",
    ),
    (TenantNotFoundError, "`ponder teams list` and `ponder keys list` show what exists"),
    (StoreUnavailableError, "check database_url (or $PONDER_DATABASE_URL)"),
    (AuthenticationError, "check the provider's key (its api_key_env variable)"),
    (BackendError, "check that the endpoint is up and its base_url is right"),
    (ConfigError, "fix the configuration file passed with --config"),
)

# Exit codes: 1 for an error Ponder reports, 2 for a mistake in the command line itself
# (click's convention), 130 for Ctrl-C (the shell's).
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def one_line(text: str) -> str:
    """Collapse a message that spans lines (a pydantic error, a TOML parser's) into one."""
    return " ".join(text.split())


def describe(error: PonderError) -> str:
    """The message of a Ponder error and, where it does not say it already, what to do."""
    message = one_line(error.message)
    if isinstance(error, ModelError) and "install" in message:
        return message  # it names the package to install
    for kind, hint in _HINTS:
        if isinstance(error, kind):
            return message if "--config" in message else f"{message}; {hint}"
    return message


class CommandError(click.ClickException):
    """A mistake only the command line can see (a port in use, a flag that does not apply)."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


def translate(error: BaseException, command_path: str) -> tuple[str, int] | None:
    """The one-line message and exit code for ``error``; None where it is a bug (keep the
    traceback). ``command_path`` names the help a usage mistake points to, when the error
    does not know its command."""
    if isinstance(error, click.UsageError):
        where = error.ctx.command_path if error.ctx is not None else command_path
        return f"{one_line(error.format_message())} (see '{where} --help')", EXIT_USAGE
    if isinstance(error, click.ClickException):
        return one_line(error.format_message()), error.exit_code
    if isinstance(error, PonderError):
        return describe(error), EXIT_ERROR
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return f"the address is already in use ({error.strerror}); pass --port", EXIT_ERROR
    return None
