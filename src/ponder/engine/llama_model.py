"""A thin, typed layer over llama.cpp's C API (through llama-cpp-python's ctypes bindings).

It loads a GGUF model and a context, tokenizes, renders the model's own chat template, and
turns tokens into bytes. Decoding and sampling live in :mod:`ponder.engine.batched`.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from ponder.config import ContextConfig
from ponder.errors import ModelError
from ponder.types import Message


@functools.cache
def _has_amx() -> bool:
    """Whether this CPU has AMX tiles (read once; the answer cannot change)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(line.startswith("flags") and "amx_tile" in line for line in cpuinfo)
    except OSError:
        return False


@functools.cache
def _silence_llama_log() -> object:
    """llama.cpp logs every load detail to stderr; keep errors only.

    The log callback is process-wide in llama.cpp, so it is installed once; the cache also
    keeps the ctypes callback alive for as long as the process runs.
    """
    if os.environ.get("PONDER_LLAMA_VERBOSE"):
        return None

    def _log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level == 4:  # GGML_LOG_LEVEL_ERROR
            os.write(2, text)

    callback: object = llama_cpp.llama_log_callback(_log)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    return callback


class LlamaModel:
    """A loaded GGUF model with one llama.cpp context."""

    def __init__(self, path: Path, config: ContextConfig, *, name: str | None = None) -> None:
        _silence_llama_log()
        llama_cpp.llama_backend_init()
        self.path = path
        self.name = name or path.stem
        self.config = config
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = 0
        mparams.use_extra_bufts = (
            config.extra_buffers if config.extra_buffers is not None else not _has_amx()
        )
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise ModelError(f"llama.cpp could not load the model file {path}")
        self.model = model
        self.vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(model))

        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = config.n_ctx
        cparams.n_batch = config.n_batch
        cparams.n_ubatch = config.n_batch
        cparams.n_seq_max = config.n_seq_max
        threads = config.n_threads or os.cpu_count() or 1
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.kv_unified = config.kv_unified
        cparams.flash_attn_type = 1 if config.flash_attn else 0  # LLAMA_FLASH_ATTN_TYPE_ENABLED
        cparams.no_perf = True
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            llama_cpp.llama_model_free(model)
            raise ModelError(f"llama.cpp could not create a context for {path}")
        self.ctx = ctx
        self.memory = llama_cpp.llama_get_memory(ctx)
        self.n_ctx = int(llama_cpp.llama_n_ctx(ctx))
        self.n_ctx_seq = int(llama_cpp.llama_n_ctx_seq(ctx))
        self.n_seq_max = int(llama_cpp.llama_n_seq_max(ctx))
        self._piece_buf = ctypes.create_string_buffer(256)
        self.eos_token = self._special_text(llama_cpp.llama_vocab_eos(self.vocab))
        self.bos_token = self._special_text(llama_cpp.llama_vocab_bos(self.vocab))
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        template = llama_cpp.llama_model_chat_template(model, None)
        self.chat_template: str | None = template.decode("utf-8") if template else None
        self._formatter = (
            Jinja2ChatFormatter(self.chat_template, self.eos_token, self.bos_token)
            if self.chat_template
            else None
        )

    def close(self) -> None:
        if getattr(self, "ctx", None):
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            llama_cpp.llama_model_free(self.model)
            self.model = None

    # -- text <-> tokens ---------------------------------------------------------------
    def tokenize(
        self, text: str, *, add_special: bool = False, parse_special: bool = True
    ) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 16
        tokens = (llama_cpp.llama_token * capacity)()
        count = llama_cpp.llama_tokenize(
            self.vocab, data, len(data), tokens, capacity, add_special, parse_special
        )
        if count < 0:
            capacity = -count
            tokens = (llama_cpp.llama_token * capacity)()
            count = llama_cpp.llama_tokenize(
                self.vocab, data, len(data), tokens, capacity, add_special, parse_special
            )
        return list(tokens[:count])

    def piece(self, token: int, *, special: bool = False) -> bytes:
        n = llama_cpp.llama_token_to_piece(self.vocab, token, self._piece_buf, 256, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
            return bytes(buf.raw[:n])
        return bytes(self._piece_buf.raw[:n])

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.piece(token, special=True).decode("utf-8", errors="replace")

    # -- chat template -----------------------------------------------------------------
    def render_chat(
        self,
        messages: Sequence[Message],
        *,
        prefill: str = "",
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
    ) -> str:
        """Render messages with the model's own chat template, ready for generation."""
        wire = [m.as_dict() for m in messages]
        if self._formatter is None:
            # No template in the GGUF: a plain transcript is the least surprising fallback.
            body = "".join(f"{m['role']}: {m['content']}\n" for m in wire)
            return body + "assistant: " + prefill
        result = self._formatter(
            messages=wire,  # type: ignore[arg-type]
            tools=list(tools) if tools else None,  # type: ignore[arg-type]
            tool_choice=tool_choice,
        )
        prompt: str = result.prompt
        # The formatter may prepend the BOS text; llama.cpp adds BOS itself when it should.
        if self.add_bos and self.bos_token and prompt.startswith(self.bos_token):
            prompt = prompt[len(self.bos_token) :]
        return prompt + prefill

    def chat_tokens(
        self,
        messages: Sequence[Message],
        *,
        prefill: str = "",
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
    ) -> list[int]:
        text = self.render_chat(messages, prefill=prefill, tools=tools, tool_choice=tool_choice)
        return self.tokenize(text, add_special=self.add_bos, parse_special=True)
