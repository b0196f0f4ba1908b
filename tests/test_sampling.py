"""Stop-string matching across token boundaries and UTF-8 pieces."""

from __future__ import annotations

from ponder.engine.sampling import StopMatcher


def run(stops: tuple[str, ...], pieces: list[bytes]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    out = ""
    for piece in pieces:
        result = matcher.feed(piece)
        out += result.emit
        if result.stopped:
            return out, True
    return out + matcher.flush(), False


def test_no_stops_passes_everything_through() -> None:
    assert run((), [b"a", b"b"]) == ("ab", False)


def test_stop_inside_one_piece() -> None:
    assert run(("END",), [b"hello END world"]) == ("hello ", True)


def test_stop_spanning_pieces_is_held_back_then_cut() -> None:
    matcher = StopMatcher(("###",))
    assert matcher.feed(b"answer #").emit == "answer "
    result = matcher.feed(b"## more")
    assert result.stopped and result.emit == ""


def test_false_alarm_is_released() -> None:
    matcher = StopMatcher(("###",))
    assert matcher.feed(b"a #").emit == "a "
    assert matcher.feed(b"b").emit == "#b"


def test_earliest_of_several_stops_wins() -> None:
    assert run(("b", "a"), [b"xxab"]) == ("xx", True)


def test_split_utf8_is_decoded_whole() -> None:
    snowman = "☃".encode()
    assert run((), [snowman[:1], snowman[1:]]) == ("☃", False)
    assert run(("☃",), [b"x", snowman[:2], snowman[2:]]) == ("x", True)
