"""Start optillm (in its own virtual environment) with a patient upstream client.

optillm builds its OpenAI client with the SDK's defaults: a 600 s timeout and 2 retries. On
a 2-core machine a call queued behind many others in one batched engine takes longer than
that, and each retry throws away the decoding done so far. This raises the timeout to two
hours and turns retries off; optillm's approaches are untouched. Arguments are optillm's:

    OPENAI_API_KEY=none optillm-venv/bin/python bench/optillm_patient.py \\
        --base-url http://127.0.0.1:8100/v1 --port 8200
"""

from typing import Any

import openai

_init = openai.OpenAI.__init__


def _patient_init(self: openai.OpenAI, *args: Any, **kwargs: Any) -> None:
    kwargs.setdefault("timeout", 7200.0)
    kwargs.setdefault("max_retries", 0)
    _init(self, *args, **kwargs)


openai.OpenAI.__init__ = _patient_init  # type: ignore[method-assign]

from optillm import main  # noqa: E402  (after the patch, so optillm's client gets it)

main()
