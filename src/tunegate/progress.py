"""Progress of every step that can take more than a few seconds, on the terminal and in the logs.

:func:`bar` is a tqdm bar (the terminal sees it as usual) that also writes its state to the
``tunegate.progress`` logger: every :data:`LOG_EVERY_S` seconds and once when it closes, e.g.
``score few_shot: 96/308 ex (31%), 12.4 ex/s, ~17 s left``. Those lines are what a Prefect task
run shows in its logs (the ``tasks`` package forwards the ``tunegate`` loggers to the Prefect API;
this module, like the rest of the library, knows nothing of Prefect), and what a run whose stderr
is a file rather than a terminal keeps.

The CLI's own console handler drops these records (the bar is already on the terminal).
"""

from __future__ import annotations

import logging
import os
import time

from tqdm.auto import tqdm

log = logging.getLogger("tunegate.progress")
LOG_EVERY_S = float(os.environ.get("TUNEGATE_PROGRESS_LOG_S", "10"))


def is_progress_record(record: logging.LogRecord) -> bool:
    return record.name == log.name


class Bar(tqdm):
    """A tqdm bar that also logs where it is (see the module docstring)."""

    def __init__(self, *args, log_every: float | None = None, **kwargs):
        self._log_every = LOG_EVERY_S if log_every is None else log_every
        self._logged_at = time.monotonic()
        self._logged_n = None
        super().__init__(*args, **kwargs)

    def update(self, n: float | None = 1):
        out = super().update(n)
        if not self.disable and time.monotonic() - self._logged_at >= self._log_every:
            self._log()
        return out

    def close(self):
        if not self.disable and not getattr(self, "_closed_logged", False):
            self._closed_logged = True
            if self.n and self._logged_n != self.n:
                self._log()
        super().close()

    def _log(self) -> None:
        self._logged_at = time.monotonic()
        self._logged_n = self.n
        log.info(describe(self.format_dict))


def describe(d: dict) -> str:
    """One line from a tqdm ``format_dict``: "desc: n/total unit (pct), rate, ~eta left"."""
    n, total, unit = d.get("n", 0), d.get("total"), d.get("unit") or "it"
    elapsed = d.get("elapsed") or 0.0
    line = f"{d.get('prefix') or 'progress'}: {_num(n)}"
    if total:
        line += f"/{_num(total)} {unit} ({100 * n / total:.0f}%)"
    else:
        line += f" {unit}"
    rate = n / elapsed if elapsed > 0 else None
    if rate:
        line += f", {rate:.3g} {unit}/s" if rate >= 1 else f", {1 / rate:.3g} s/{unit}"
        if total and n < total:
            line += f", ~{_duration((total - n) / rate)} left"
        elif total:
            line += f", done in {_duration(elapsed)}"
    if d.get("postfix"):
        line += f" [{d['postfix']}]"
    return line


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def bar(total: int | None, desc: str | None, unit: str = "ex", *, enabled: bool = True, **kwargs) -> Bar:
    """A progress bar (terminal and logs); ``desc=None`` or ``enabled=False``: silent."""
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 1.0)
    return Bar(total=total, desc=desc, unit=unit, disable=not enabled or desc is None, **kwargs)
