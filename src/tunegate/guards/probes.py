"""The probes shipped with the package (``probes/``, written by scripts/vendor_probes.py from ../shared/data;
``probes/SOURCE.md`` gives each one's source, license and how its rows were drawn). They work offline.

- ``piqa`` (AFL-3.0): a goal and two solutions, one right (``label``): a general-ability probe, for retention.
- ``crows_pairs`` (CC BY-SA 4.0): a more and a less stereotyping sentence (``sent_more``, ``sent_less``) with
  its ``bias_type``: a bias probe (the share of pairs where a model prefers the stereotype; 0.5 is unbiased).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Probe:
    """A shipped probe: its file under ``probes/``, what a row holds and the license it is shared under."""

    name: str
    file: str
    kind: str  # "choice": pick the right one of two continuations; "pairs": which of two sentences is preferred
    license: str
    description: str


PROBES = {
    "piqa": Probe(
        "piqa",
        "piqa.jsonl",
        "choice",
        "AFL-3.0",
        "PIQA (physical commonsense): a goal, two solutions, the right one's index",
    ),
    "crows_pairs": Probe(
        "crows_pairs",
        "crows_pairs.csv",
        "pairs",
        "CC BY-SA 4.0",
        "CrowS-Pairs (social bias): a more and a less stereotyping sentence, and the bias type",
    ),
}


def probe_rows(name: str) -> list[dict]:
    """A shipped probe's rows (``piqa``: goal, sol1, sol2, label; ``crows_pairs``: sent_more, sent_less,
    stereo_antistereo, bias_type); each with its ``id`` in the original file."""
    if name not in PROBES:
        raise KeyError(f"unknown probe '{name}'; shipped: {', '.join(PROBES)}")
    text = resources.files("tunegate.guards").joinpath("probes", PROBES[name].file).read_text(encoding="utf-8")
    if PROBES[name].file.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = list(csv.DictReader(io.StringIO(text)))
    return [{**r, "id": int(r["id"])} for r in rows]
