"""``wsmanager.connection._outbox``: order, accounting, the one-writer rule and the overflow verdicts,
without any I/O."""

from __future__ import annotations

import pytest

from wsmanager.connection._outbox import Outbox, Verdict, frame, size_of


def drain(box: Outbox) -> list[str]:
    out = []
    while (message := box.next()) is not None:
        out.append(message.get("text") or message["bytes"].decode())
    return out


def test_the_first_put_into_an_idle_outbox_makes_the_caller_the_writer() -> None:
    box = Outbox(None, 10, held=False)
    assert box.put(frame("a")) is Verdict.WRITE
    assert box.put(frame("b")) is Verdict.QUEUED  # someone writes already
    assert drain(box) == ["a", "b"]
    assert box.writing is False  # next() returning None let go
    assert box.put(frame("c")) is Verdict.WRITE


def test_frames_come_out_in_the_order_they_were_put() -> None:
    box = Outbox(None, 100, held=False)
    for i in range(50):
        box.put(frame(str(i)))
    assert drain(box) == [str(i) for i in range(50)]


def test_a_held_outbox_queues_and_starts_no_writer_until_released() -> None:
    box = Outbox(None, 10)
    assert box.put(frame("a")) is Verdict.QUEUED
    assert box.claim() is False
    assert box.release() is True  # the releaser becomes the writer
    assert drain(box) == ["a"]


def test_release_of_an_empty_outbox_makes_no_writer() -> None:
    box = Outbox(None, 10)
    assert box.release() is False
    assert box.put(frame("a")) is Verdict.WRITE


def test_opening_frames_go_ahead_of_those_queued_during_the_handshake() -> None:
    box = Outbox(None, 10)
    box.put(frame("queued 1"))
    box.put(frame("queued 2"))
    waiting = box.take_all()
    box.put(frame("hello"))
    box.extend(waiting)
    assert box.bytes == len("hello") + len("queued 1") + len("queued 2")
    box.release()
    assert drain(box) == ["hello", "queued 1", "queued 2"]


def test_bytes_count_what_was_put_and_not_yet_taken() -> None:
    box = Outbox(None, 10, held=False)
    box.put(frame("abc"))
    box.put(frame(b"\x00" * 5))
    box.put(frame("é"))  # two bytes in UTF-8
    assert box.bytes == 3 + 5 + 2 and len(box) == 3
    box.next()
    assert box.bytes == 7


def test_over_max_frames_is_refused() -> None:
    box = Outbox(None, 2)
    assert [box.put(frame(str(i))) for i in range(3)] == [Verdict.QUEUED, Verdict.QUEUED, Verdict.OVER_FRAMES]
    assert len(box) == 2


def test_over_max_bytes_is_refused_counting_what_the_server_buffers() -> None:
    box = Outbox(10, 100)
    assert box.put(frame("x" * 6)) is Verdict.QUEUED
    assert box.put(frame("x" * 5)) is Verdict.OVER_BYTES
    assert box.put(frame("x" * 4)) is Verdict.QUEUED  # exactly at the limit
    empty = Outbox(10, 100)
    assert empty.put(frame("x" * 4), buffered=7) is Verdict.OVER_BYTES


def test_one_frame_larger_than_max_bytes_fits_an_empty_backlog() -> None:
    box = Outbox(10, 100, held=False)
    assert box.put(frame("x" * 50)) is Verdict.WRITE
    assert box.put(frame("y")) is Verdict.OVER_BYTES


def test_a_closed_outbox_refuses_and_forgets() -> None:
    box = Outbox(None, 10)
    box.put(frame("a"))
    box.put(frame("b"))
    assert box.close() == 2
    assert box.put(frame("c")) is Verdict.CLOSED
    assert box.bytes == 0 and box.next() is None
    assert box.claim() is False


def test_next_after_close_lets_the_writer_go() -> None:
    box = Outbox(None, 10, held=False)
    box.put(frame("a"))
    box.put(frame("b"))
    box.close()
    assert box.next() is None and box.writing is False


@pytest.mark.parametrize(("data", "size"), [("", 0), ("ascii", 5), ("€", 3), (b"\xff\x00", 2), ("\udfff", 3)])
def test_size_of_is_the_utf8_payload_size(data: str | bytes, size: int) -> None:
    assert size_of(frame(data)) == size


def test_frame_refuses_what_is_neither_text_nor_bytes() -> None:
    with pytest.raises(TypeError, match=r"str \(text\) or bytes"):
        frame(3)  # type: ignore[arg-type]


def test_a_frame_fits_at_once_only_when_nothing_waits_and_within_the_limits() -> None:
    """fits_at_once: the caller may write a frame itself (servers.direct_writer) only
    where put() would have made it the writer of that frame alone."""
    box = Outbox(100, 10, held=False)
    message = frame("x" * 60)
    assert box.fits_at_once(message)
    assert box.fits_at_once(message, buffered=40)  # 40 + 60 is the limit, not over it
    assert not box.fits_at_once(message, buffered=41)  # put() would refuse it (1013)
    assert box.put(frame("a")) is Verdict.WRITE  # a writer is at work: the frame must queue
    assert not box.fits_at_once(message)
    while box.next() is not None:
        pass
    assert box.fits_at_once(message)
    assert not Outbox(100, 10).fits_at_once(message)  # held during the handshake
    box.close()
    assert not box.fits_at_once(message)


def test_an_outbox_holds_a_queue_only_while_frames_wait() -> None:
    """An idle socket costs no queue: made by the first frame that waits, let go when the
    writer has taken the last one, or when the outbox closes; refusals make none."""
    box = Outbox(10, 1, held=False)
    assert box._frames is None
    assert box.put(frame("x" * 11), buffered=5) is Verdict.OVER_BYTES
    assert box._frames is None
    assert box.put(frame("a")) is Verdict.WRITE
    assert box._frames is not None and len(box) == 1
    assert box.put(frame("b")) is Verdict.OVER_FRAMES
    assert drain(box) == ["a"]
    assert box._frames is None and len(box) == 0
    box.put(frame("c"))
    assert box.close() == 1
    assert box._frames is None and len(box) == 0


def test_a_zero_frame_outbox_refuses_even_its_first_frame() -> None:
    box = Outbox(None, 0, held=False)
    assert box.put(frame("a")) is Verdict.OVER_FRAMES
    assert len(box) == 0
