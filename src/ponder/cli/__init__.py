"""The ``ponder`` command line. ``main`` is the entry point (``ponder = "ponder.cli:main"``).

- :mod:`~ponder.cli.app`: the group, its global options and the list of subcommands;
- :mod:`~ponder.cli.group` and :mod:`~ponder.cli.errors`: options anywhere, one-line errors;
- :mod:`~ponder.cli.ask`, :mod:`~ponder.cli.live`, :mod:`~ponder.cli.summary`: ``ponder ask``
  and what it shows while it works;
- :mod:`~ponder.cli.serve`: ``ponder serve``; :mod:`~ponder.cli.inventory`: the listings.
"""

from ponder.cli.app import main

__all__ = ["main"]
