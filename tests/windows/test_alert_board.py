"""The executor's alert board: plain alerts once per change, conditions once while they last, then cleared."""

from __future__ import annotations

from shared_schema.clock import ManualClock
from tests.kit.stubs import SESSION_TIME
from windows.publisher import AlertBoard


def _board() -> tuple[AlertBoard, ManualClock, list[int]]:
    clock = ManualClock(SESSION_TIME)
    changes: list[int] = []
    return AlertBoard(clock, lambda: changes.append(1)), clock, changes


def test_a_repeated_plain_alert_is_published_once_until_another_comes():
    board, _clock, changes = _board()
    board.post("broker DISCONNECTED")
    board.post("broker DISCONNECTED")
    board.post("broker connected")
    board.post("broker DISCONNECTED")
    assert [a.split(" ", 2)[2] for a in board] == ["broker DISCONNECTED", "broker connected", "broker DISCONNECTED"]
    assert len(changes) == 3  # one change per published alert, none for the repeat


def test_a_condition_is_raised_once_while_it_lasts_and_marked_cleared_when_it_ends():
    board, clock, changes = _board()
    board.post("publish failed for shared_pool.json", key="publish:pool")
    clock.advance(5)
    board.post("publish failed for shared_pool.json", key="publish:pool")
    assert len(list(board)) == 1 and list(board.active()) == ["publish:pool"]
    board.clear("publish:pool")
    assert board.active() == {}
    (text,) = list(board)
    assert text.endswith("]") and "[cleared " in text
    assert len(changes) == 2  # raised, cleared: the repeat changed nothing a reader sees
    board.clear("publish:pool")  # clearing what is not raised is a no-op
    assert len(changes) == 2


def test_the_board_keeps_the_newest_fifty():
    board, _clock, _changes = _board()
    for i in range(60):
        board.post(f"alert {i}")
    texts = list(board)
    assert len(texts) == 50 and texts[-1].endswith("alert 59") and texts[0].endswith("alert 10")
