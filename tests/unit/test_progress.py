"""Progress bars also write their state to the log (what a Prefect task run and a log file show)."""

import logging

import pytest

from tunegate.progress import bar, describe


@pytest.fixture
def progress_lines():
    """The messages logged to tunegate.progress (a handler of its own: the CLI may turn propagation off)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger("tunegate.progress")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_bar_logs_its_count_rate_and_time_left_and_once_at_the_end(progress_lines):
    with bar(40, "score few_shot", "ex", log_every=0) as b:
        for _ in range(4):
            b.update(10)
    lines = progress_lines
    assert len(lines) == 4  # every update (log_every=0); the last one is not repeated by close()
    assert lines[0].startswith("score few_shot: 10/40 ex (25%), ") and "left" in lines[0]
    assert lines[-1].startswith("score few_shot: 40/40 ex (100%)") and "done in" in lines[-1]


def test_a_silent_bar_logs_nothing(progress_lines):
    with bar(10, None, log_every=0) as b:  # desc None: scoring inside a calibration step of another bar
        b.update(10)
    with bar(10, "tune", "step", enabled=False, log_every=0) as b:
        b.update(10)
    assert progress_lines == []


def test_describe_reads_slow_rates_and_long_durations():
    d = {"n": 2, "total": 100, "unit": "step", "elapsed": 20.0, "prefix": "tune", "postfix": "loss=0.5"}
    assert describe(d) == "tune: 2/100 step (2%), 10 s/step, ~16.3 min left [loss=0.5]"
