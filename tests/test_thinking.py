"""Splitting <think> blocks from content, incrementally."""

from __future__ import annotations

from ponder.backends.thinking import ThinkSplitter, split_thinking


def stream(pieces: list[str], **kwargs: bool) -> tuple[str, str]:
    splitter = ThinkSplitter(**kwargs)
    content = reasoning = ""
    for piece in pieces:
        part = splitter.feed(piece)
        content += part.content
        reasoning += part.reasoning
    tail = splitter.flush()
    return content + tail.content, reasoning + tail.reasoning


def test_whole_text() -> None:
    split = split_thinking("<think>hmm, 2+2</think>The answer is 4.")
    assert (split.reasoning, split.content) == ("hmm, 2+2", "The answer is 4.")


def test_tags_split_across_chunks() -> None:
    assert stream(["<th", "ink>a", "b</thi", "nk>c"]) == ("c", "ab")


def test_no_thinking() -> None:
    assert stream(["plain ", "answer"]) == ("plain answer", "")


def test_think_tag_later_in_text_is_content() -> None:
    assert stream(["I said <think> once"]) == ("I said <think> once", "")


def test_implicit_open_for_templates_that_start_the_thought() -> None:
    assert stream(["reasoning</think>answer"], implicit_open=True) == ("answer", "reasoning")


def test_unclosed_thought_stays_reasoning() -> None:
    assert stream(["<think>still going"]) == ("", "still going")
