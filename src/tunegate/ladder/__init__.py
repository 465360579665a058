"""The baseline ladder: every way of answering without changing a weight.

Rung kinds are plugins, registered by the key they have under ``baselines:`` (``base.register_rung``); the
order of registration is the ladder's order, cheapest first: zero-shot, few-shot with fixed random
demonstrations, few-shot with demonstrations retrieved per input (bm25 / dense / hybrid), RAG over a document
collection, then an instruction and demonstrations searched on the selection split (``optimized_prompt``, off by
default). With ``baselines.calibrated`` every classification rung is followed by its calibrated twin
(``calibration.py``). Each rung turns into an :class:`Augment` (what goes into each eval prompt besides the
input, plus what it cost) and then runs through the one evaluation path that tuned models use too
(``core.py``: the ladder's operations).

Adding a rung kind: one folder here (peft's layout, as for methods): ``settings.py`` (its settings class,
nothing heavy), ``rung.py`` (its ``RungKind``) and ``__init__.py`` (``register_rung(...)``), its import line
below, and a row in ``tests/unit/test_ladder.py``. The config, the ladder, the cache key, the report and the
decision read the registry. This package and the rungs' settings import nothing heavy: the config loads them.
"""

from tunegate.ladder.base import (
    RUNGS,
    Augment,
    LadderContext,
    Retriever,
    Rung,
    RungEntry,
    RungKind,
    get_rung,
    register_rung,
    unregister_rung,
)

# each registers itself; the order here is the ladder's order
# isort: off
from tunegate.ladder import zero_shot, few_shot, retrieved_few_shot, rag, optimized_prompt  # noqa: E402, F401
# isort: on

__all__ = [
    "RUNGS",
    "Augment",
    "LadderContext",
    "Retriever",
    "Rung",
    "RungEntry",
    "RungKind",
    "get_rung",
    "register_rung",
    "unregister_rung",
]
