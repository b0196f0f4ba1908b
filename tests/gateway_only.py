"""A gateway-only install, checked by CI in a fresh virtual environment made with plain
``pip install .`` (no ``[local]``, so no llama.cpp): Ponder must import, serve a remote model
through the real openai SDK, pass a request through, and run a strategy over the endpoint.

Run as a script (``python tests/gateway_only.py``); it exits non-zero on any failure.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fake_openai import make_app, serve_app


def main() -> None:
    assert importlib.util.find_spec("llama_cpp") is None, "llama_cpp is installed here"
    import openai

    from ponder.config import PonderConfig, ProviderConfig
    from ponder.server.app import create_app

    upstream = make_app()
    with serve_app(upstream) as url:
        config = PonderConfig(
            trace_db=":memory:",
            default_strategy=None,
            providers=(ProviderConfig(name="up", base_url=f"{url}/vllm/v1", models=("m",)),),
        )
        with serve_app(create_app(config, preload=["m"])) as ponder:
            client = openai.OpenAI(base_url=f"{ponder}/v1", api_key="unused", max_retries=0)
            plain = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=5
            )
            assert plain.choices[0].message.content, plain
            reasoned = client.chat.completions.create(
                model="ponder/self-consistency;n=2/m",
                messages=[{"role": "user", "content": "What is 40 + 2?"}],
            )
            assert reasoned.model_extra and reasoned.model_extra["ponder"]["strategy"]
            try:
                client.chat.completions.create(
                    model="qwen2.5-coder-1.5b-instruct",
                    messages=[{"role": "user", "content": "Hi"}],
                )
            except openai.APIStatusError as exc:
                assert 'pip install "ponder[local]"' in exc.message, exc.message
            else:
                raise AssertionError("an embedded model answered without llama.cpp")
    print("gateway-only install: OK (no llama_cpp; remote model served; strategy ran)")


if __name__ == "__main__":
    main()
