"""The ``ponder`` group's behaviour: global options anywhere on the line, one-line errors.

``ponder serve --config x.toml`` and ``ponder --config x.toml serve`` mean the same: the
group's own options (``--config``, ``-v``, ``--log-format``) are moved in front of the
subcommand before click parses the line. Every error a command raises is turned into one line
by :func:`ponder.cli.errors.translate`, here and nowhere else.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from ponder.cli.errors import EXIT_INTERRUPTED, translate


class PonderGroup(click.Group):
    """A click group whose options may follow the subcommand, and whose errors are one line."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = self.hoist_global_options(list(sys.argv[1:] if args is None else args))
        if not standalone_mode:  # the caller handles errors itself
            return super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            return super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as error:
            mapped = translate(error, prog_name or self.name or "ponder")
            if mapped is None:
                raise
            message, code = mapped
            click.echo(f"Error: {message}", err=True)
            sys.exit(code)

    def hoist_global_options(self, argv: list[str]) -> list[str]:
        """``argv`` with the group's options that follow the subcommand moved before it."""
        takes_value: set[str] = set()
        flags: set[str] = set()
        for param in self.params:
            if isinstance(param, click.Option):
                names = [*param.opts, *param.secondary_opts]
                (flags if param.is_flag else takes_value).update(names)
        front: list[str] = []
        rest: list[str] = []
        i, seen_command = 0, False
        while i < len(argv):
            token = argv[i]
            if token == "--":  # everything after it is an argument
                rest.extend(argv[i:])
                break
            name = token.split("=", 1)[0]
            if name in takes_value:
                inline = "=" in token
                front.extend(argv[i : i + (1 if inline else 2)])
                i += 1 if inline else 2
                continue
            if token in flags:
                front.append(token)
            elif not seen_command and not token.startswith("-"):
                seen_command = True
                rest.append(token)
            else:
                rest.append(token)
            i += 1
        return front + rest
