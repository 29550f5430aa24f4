"""``quiet`` keeps funasr's prints off stdout, also when several threads use it at once."""

from __future__ import annotations

import sys
import threading

import pytest

from callsense.pipeline.quiet import quiet


def test_each_thread_captures_its_own_output_and_stdout_comes_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = sys.stdout
    inside = threading.Barrier(3)
    leave = threading.Event()
    said: dict[int, str] = {}

    def noisy(n: int) -> None:
        with quiet() as buf:
            inside.wait(10)
            print(f"funasr says {n}")
            leave.wait(10)
        said[n] = buf.getvalue()

    threads = [threading.Thread(target=noisy, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    inside.wait(10)  # both threads are inside their blocks now
    print("callsense output")  # this thread is not quieted: it must reach stdout
    leave.set()
    for t in threads:
        t.join(10)
    assert said == {1: "funasr says 1\n", 2: "funasr says 2\n"}
    assert sys.stdout is real
    assert capsys.readouterr().out == "callsense output\n"


def test_nested_blocks_pass_output_to_the_outer_buffer() -> None:
    real = sys.stdout
    with quiet() as outer:
        print("a")
        with quiet() as inner:
            print("b")
        print("c")
    assert inner.getvalue() == "b\n"
    assert outer.getvalue() == "a\nb\nc\n"
    assert sys.stdout is real
