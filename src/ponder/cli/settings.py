"""Reading the configuration file for the command line, with one-line errors and warnings.

``load_config`` (``ponder.config``) does the parsing; this adds what a user at a terminal
needs: a missing or unreadable file named as such, any other mistake in the file turned into
a :class:`~ponder.errors.ConfigError`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ponder.config import PonderConfig, load_config
from ponder.errors import ConfigError

# "ProviderConfig.__init__() missing 1 required keyword-only argument: 'base_url'"
_MISSING_ARGUMENT = re.compile(r"(\w+)\.__init__\(\) missing .*?argument: '(\w+)'")


def load_settings(path: str | None) -> PonderConfig:
    """The configuration from ``path`` (None: the defaults), or a one-line ConfigError."""
    if path is None:
        return load_config(None)
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"the configuration file {path} does not exist; check the --config path")
    if not file.is_file() or not os.access(file, os.R_OK):
        raise ConfigError(f"cannot read the configuration file {path}: not a readable file")
    try:
        config = load_config(file)
    except ConfigError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # ponder.config lets some mistakes escape as Python errors (a provider without
        # base_url is a TypeError); the mistake is still the file's, so say so in one line.
        raise ConfigError(f"invalid configuration {path}: {_explain(exc, file)}") from exc
    # An api_key_env naming an unset variable is warned about by ponder.config itself.
    return config


def _raw(file: Path) -> Mapping[str, Any]:
    try:
        return tomllib.loads(file.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}  # load_config has read it once already; nothing more to warn about


def _explain(error: Exception, file: Path) -> str:
    """Name the table at fault where the error lets us: a provider missing ``base_url``."""
    found = _MISSING_ARGUMENT.search(str(error))
    if found is not None and found.group(1) == "ProviderConfig":
        key = found.group(2)
        tables = [
            f"[providers.{name}]"
            for name, raw in dict(_raw(file).get("providers", {})).items()
            if isinstance(raw, Mapping) and key not in raw
        ]
        where = ", ".join(tables) or "a [providers.*] table"
        return f'{where} needs {key} (the endpoint\'s URL, e.g. {key} = "http://host:8000/v1")'
    return str(error)
