"""Training progress: ``Meter`` (running loss, accuracy, samples/s) and ``log_every``, a generator
around the loader (as torchvision's references do) that keeps the loop body free of logging."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator


class Meter:
    """Running sums over a window of steps and over the epoch: loss, accuracy, samples/s."""

    def __init__(self) -> None:
        self.epoch = {"loss": 0.0, "correct": 0.0, "n": 0}
        self.window = {"loss": 0.0, "correct": 0.0, "n": 0}
        self.t_epoch = self.t_window = time.perf_counter()

    def update(self, loss: float, correct: float, n: int) -> None:
        for acc in (self.epoch, self.window):
            acc["loss"] += loss * n
            acc["correct"] += correct
            acc["n"] += n

    @staticmethod
    def _summary(acc: dict, seconds: float) -> dict[str, float]:
        n = max(acc["n"], 1)
        return {"loss": acc["loss"] / n, "accuracy": acc["correct"] / n, "samples_per_s": acc["n"] / max(seconds, 1e-9)}

    def pop_window(self) -> dict[str, float]:
        now = time.perf_counter()
        out = self._summary(self.window, now - self.t_window)
        self.window = {"loss": 0.0, "correct": 0.0, "n": 0}
        self.t_window = now
        return out

    def epoch_summary(self) -> dict[str, float]:
        return self._summary(self.epoch, time.perf_counter() - self.t_epoch)


def log_every(iterable: Iterable, meter: Meter, *, every: int, total: int, desc: str,
              on_log=None) -> Iterator:
    """Yield from ``iterable`` behind a tqdm bar; every ``every`` items show and hand on the window's
    loss, accuracy and samples/s (``on_log(i, summary)``), keeping the training loop free of it."""
    from tqdm.auto import tqdm

    bar = tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, disable=None)

    def flush(i: int) -> None:
        summary = meter.pop_window()
        bar.set_postfix(loss=f"{summary['loss']:.3f}", acc=f"{summary['accuracy']:.3f}",
                        sps=f"{summary['samples_per_s']:.0f}")
        if on_log is not None:
            on_log(i, summary)

    i = 0
    try:
        for i, item in enumerate(bar, start=1):
            yield item
            if i % every == 0 or i == total:
                flush(i)
    finally:   # closed early (max_steps): the steps since the last flush are still logged
        if meter.window["n"]:
            flush(i)
        bar.close()

