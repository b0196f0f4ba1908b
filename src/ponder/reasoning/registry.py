"""The strategy registry: strategies are found, not listed.

A built-in strategy is one module in :mod:`ponder.reasoning.strategies` that defines a class
with a ``name``, a ``Params`` model and an async ``run``; nothing else has to name it. A
third-party package adds strategies through the ``ponder.strategies`` entry point group
(``my_strategy = "my_package.module:MyStrategy"``), validated the same way when a registry
is built. Registries are immutable values, built per gateway.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from types import MappingProxyType, ModuleType
from typing import Any, cast

from pydantic import ValidationError

from ponder.errors import ConfigError, InvalidRequestError
from ponder.reasoning import strategies as builtin_package
from ponder.reasoning.base import Strategy, StrategyParams

ENTRY_POINT_GROUP = "ponder.strategies"


def strategy_problem(obj: object) -> str | None:
    """Why ``obj`` is not a strategy class, or None when it is one."""
    if not inspect.isclass(obj):
        return "not a class"
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name or name != name.strip() or "/" in name:
        return "its `name` must be a non-empty string without '/'"
    params = getattr(obj, "Params", None)
    if not (inspect.isclass(params) and issubclass(params, StrategyParams)):
        return "its `Params` must subclass ponder.reasoning.base.StrategyParams"
    if not inspect.iscoroutinefunction(getattr(obj, "run", None)):
        return "it needs `async def run(self, ctx, request, params)`"
    try:
        inspect.signature(obj).bind()
    except TypeError:
        return "it must be constructible with no arguments"
    return None


def _defined_in(module: ModuleType) -> list[type[Strategy]]:
    found: list[type[Strategy]] = []
    for obj in vars(module).values():
        if getattr(obj, "__module__", None) == module.__name__ and strategy_problem(obj) is None:
            found.append(cast("type[Strategy]", obj))
    return found


def _builtin() -> dict[str, type[Strategy]]:
    found: dict[str, type[Strategy]] = {}
    for info in pkgutil.iter_modules(builtin_package.__path__):
        module = importlib.import_module(f"{builtin_package.__name__}.{info.name}")
        for cls in _defined_in(module):
            found[cls.name] = cls
    return found


BUILTIN: Mapping[str, type[Strategy]] = MappingProxyType(_builtin())


class StrategyRegistry:
    """Strategy names to classes, and parameter validation. Immutable once built."""

    def __init__(self, strategies: Mapping[str, type[Strategy]] = BUILTIN) -> None:
        self._strategies: Mapping[str, type[Strategy]] = MappingProxyType(dict(strategies))

    @staticmethod
    def discover(plugins: Iterable[Any] | None = None) -> StrategyRegistry:
        """The built-in strategies plus those installed packages declare under the
        ``ponder.strategies`` entry point group. A plugin that is not a valid strategy, or
        that reuses a name, stops start-up with an error naming it."""
        found = dict(BUILTIN)
        points = entry_points(group=ENTRY_POINT_GROUP) if plugins is None else plugins
        for point in points:
            try:
                cls = point.load()
            except Exception as exc:  # any import error of a third-party package
                raise ConfigError(f"strategy plugin {point.name!r} does not load: {exc}") from exc
            problem = strategy_problem(cls)
            if problem is not None:
                raise ConfigError(f"strategy plugin {point.name!r} is not a strategy: {problem}")
            if cls.name in found and found[cls.name] is not cls:
                raise ConfigError(
                    f"strategy plugin {point.name!r} reuses the name {cls.name!r} of "
                    f"{found[cls.name].__module__}"
                )
            found[cls.name] = cls
        return StrategyRegistry(found)

    def names(self) -> list[str]:
        return sorted(self._strategies)

    def items(self) -> list[tuple[str, type[Strategy]]]:
        return sorted(self._strategies.items())

    def __contains__(self, name: object) -> bool:
        return name in self._strategies

    def get(self, name: str) -> type[Strategy]:
        try:
            return self._strategies[name]
        except KeyError:
            raise InvalidRequestError(
                f"unknown strategy {name!r}; known: {', '.join(self.names())}",
                param="ponder.strategy",
            ) from None

    def parse_params(self, name: str, raw: Mapping[str, Any]) -> StrategyParams:
        """Validate a strategy's parameters; bad ones are a 400 that names the field."""
        cls = self.get(name)
        try:
            return cls.Params.model_validate(dict(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise InvalidRequestError(
                f"{name}: {where + ': ' if where else ''}{first.get('msg', 'invalid parameter')}",
                param=f"ponder.{where}" if where else "ponder",
            ) from exc
