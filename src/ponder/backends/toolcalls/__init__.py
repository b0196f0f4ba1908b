"""Tool calls of local models: their markup parsed, as it streams, into OpenAI ``tool_calls``
(:mod:`.hermes`, with bare-JSON calls in :mod:`.bare`), and the request's side, what
``tool_choice`` allows (:mod:`.plan`). The embedded backend turns the plan into a grammar.

:func:`merge_fragments` (defined with the Backend seam, which merges streamed calls for every
backend) folds fragments back into whole calls, for replies that are not streamed.
"""

from ponder.backends.base import merge_fragments
from ponder.backends.toolcalls.hermes import (
    CLOSE_LAYOUT,
    CLOSE_TAG,
    OPEN_LAYOUT,
    OPEN_TAG,
    SEPARATOR,
    Fragment,
    HermesStream,
    new_call_id,
    parse_hermes,
    parser_for_template,
)
from ponder.backends.toolcalls.plan import ToolPlan, plan_tools, template_messages

__all__ = [
    "CLOSE_LAYOUT",
    "CLOSE_TAG",
    "OPEN_LAYOUT",
    "OPEN_TAG",
    "SEPARATOR",
    "Fragment",
    "HermesStream",
    "ToolPlan",
    "merge_fragments",
    "new_call_id",
    "parse_hermes",
    "parser_for_template",
    "plan_tools",
    "template_messages",
]
