"""progress.py: bars on a terminal (a real pseudo-terminal), silence elsewhere, printed lines intact."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import termios
from typing import TextIO

import pytest

from lstm_trainer.outputs.progress import ProgressBars, say


def drive(file: TextIO, show: bool = True) -> None:
    bars = ProgressBars(show, num_epochs=2, steps_per_epoch=3, file=file)
    for epoch in range(2):
        for _ in range(3):
            bars.step()
        bars.running_loss(0.125)
        bars.end_epoch(epoch + 1, train_loss=0.5, val_mse=0.25, best_val_mse=0.25)
    bars.close()


def terminal() -> tuple[int, int]:
    """A pseudo-terminal 120 columns wide, as a real one would report."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    return leader, follower


def read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_bars_draw_on_a_terminal() -> None:
    leader, follower = terminal()
    with os.fdopen(follower, "w") as tty:
        drive(tty)
    drawn = read_all(leader)
    os.close(leader)
    assert "epochs: 100%" in drawn and "2/2" in drawn, drawn
    assert "loss 0.12500" in drawn and "train 0.50000, val 0.25000, best 0.25000" in drawn, drawn
    assert "epoch 2:" in drawn and "epoch 3" not in drawn, drawn


def test_bars_start_where_a_resumed_run_starts() -> None:
    leader, follower = terminal()
    with os.fdopen(follower, "w") as tty:
        ProgressBars(True, num_epochs=3, steps_per_epoch=4, start_epoch=1, steps_done=2, file=tty).close()
    drawn = read_all(leader)
    os.close(leader)
    assert "1/3" in drawn and "epoch 2:" in drawn and "2/4" in drawn, drawn


@pytest.mark.parametrize("show", [True, False])
def test_bars_stay_silent_off_a_terminal_or_off_the_main_process(show: bool) -> None:
    log = io.StringIO()
    if show:
        drive(log)  # not a TTY: tqdm's disable=None turns them off
    else:
        leader, follower = terminal()
        with os.fdopen(follower, "w") as tty:
            drive(tty, show=False)
        assert read_all(leader) == ""
        os.close(leader)
    assert log.getvalue() == ""


def test_say_prints_whole_lines(capsys: pytest.CaptureFixture[str]) -> None:
    say("epoch   1 | train loss 0.5")
    assert capsys.readouterr().out == "epoch   1 | train loss 0.5\n"
