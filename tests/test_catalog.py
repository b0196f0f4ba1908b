"""Strategies are found, not listed: built-ins by module, third-party ones by entry point;
the catalogue in docs/strategies.md is generated from the same registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from ponder.backends.scripted import ScriptedBackend
from ponder.cli import main
from ponder.config import PonderConfig
from ponder.errors import ConfigError
from ponder.gateway import Gateway
from ponder.reasoning import catalog
from ponder.reasoning.base import RunContext, Strategy, StrategyParams, StrategyResult
from ponder.reasoning.registry import BUILTIN, StrategyRegistry
from ponder.routing.registry import BackendRegistry
from ponder.types import GenerationRequest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "strategies.md"


class EchoParams(StrategyParams):
    prefix: str = "echo"


class Echo(Strategy):
    """A third-party strategy: answers with its parameter and the question."""

    name: ClassVar[str] = "echo"
    Params: ClassVar[type[StrategyParams]] = EchoParams

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: EchoParams
    ) -> StrategyResult:
        completion = await ctx.backend.generate(request.replace(n=1))
        text = f"{params.prefix}: {completion.text}"
        return StrategyResult(text, None, text, ctx.trace.usage, ctx.trace)


@dataclass
class Point:
    """Stands in for importlib.metadata.EntryPoint: a name and load()."""

    name: str
    target: Any

    def load(self) -> Any:
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


def test_the_docs_table_is_generated_from_the_registry() -> None:
    table = catalog.markdown(StrategyRegistry.discover())
    assert table in DOCS.read_text(), "run: ponder strategies --write-docs docs/strategies.md"
    for name in BUILTIN:
        assert f"| `{name}` |" in table


def test_the_cli_lists_every_strategy() -> None:
    out = CliRunner().invoke(main, ["strategies"]).output
    for name, cls in BUILTIN.items():
        assert name in out and catalog.example_model_name(cls) in out


async def test_an_entry_point_adds_a_strategy_that_runs_through_the_gateway() -> None:
    registry = StrategyRegistry.discover([Point("echo", Echo)])
    assert "echo" in registry and set(BUILTIN) < set(registry.names())
    config = PonderConfig(default_model="m", trace_db=":memory:")
    backends = BackendRegistry(config)
    backends.register("m", ScriptedBackend.cycle(["hello"]))
    async with Gateway(config, registry=backends, strategies=registry) as gateway:
        reply = await gateway.chat("Say hi.", strategy={"strategy": "echo", "prefix": "p"})
    assert reply.text == "p: hello"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (ImportError("no module named thing"), "does not load"),
        (object(), "not a class"),
        (type("NoRun", (), {"name": "x", "Params": EchoParams}), "async def run"),
        (type("Taken", (Echo,), {"name": "cot"}), "reuses the name 'cot'"),
    ],
)
def test_a_broken_plugin_stops_start_up_with_its_name(target: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        StrategyRegistry.discover([Point("bad-plugin", target)])
    assert "bad-plugin" in str(raised.value)
