"""Write the general-ability and bias probes the guards ship with (src/tunegate/guards/probes/), from the copies
in ../shared/data: a deterministic sample of each, with its source, license and how it was drawn.

    python scripts/vendor_probes.py [--shared ../shared/data] [--rows 300]

PIQA (AFL-3.0): `rows` items drawn at random (seed 0) from the 1,838 of its validation set, each with its label.
CrowS-Pairs (CC BY-SA 4.0; the sample is shared under the same license): `rows` pairs drawn at random (seed 0)
within each bias type in proportion to its share of the 1,508 pairs (every type kept).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "tunegate" / "guards" / "probes"


def piqa(shared: Path, rows: int) -> list[dict]:
    items = [json.loads(line) for line in (shared / "piqa" / "valid.jsonl").read_text().splitlines() if line.strip()]
    labels = [int(x) for x in (shared / "piqa" / "valid-labels.lst").read_text().split()]
    assert len(items) == len(labels), "valid.jsonl and valid-labels.lst are not aligned"
    picked = sorted(random.Random(0).sample(range(len(items)), rows))
    return [
        {"id": i, "goal": items[i]["goal"], "sol1": items[i]["sol1"], "sol2": items[i]["sol2"], "label": labels[i]}
        for i in picked
    ]


def crows_pairs(shared: Path, rows: int) -> list[dict]:
    with open(shared / "crows_pairs" / "crows_pairs_anonymized.csv", newline="", encoding="utf-8") as f:
        pairs = list(csv.DictReader(f))
    by_type: dict[str, list[dict]] = defaultdict(list)
    for p in pairs:
        by_type[p["bias_type"]].append(p)
    rng = random.Random(0)
    out = []
    for bias_type, group in sorted(by_type.items()):
        k = max(1, round(rows * len(group) / len(pairs)))
        out += rng.sample(group, min(k, len(group)))
    keep = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")
    return sorted(({"id": int(p[""]), **{k: p[k] for k in keep}} for p in out), key=lambda p: p["id"])


SOURCE = """# Probes shipped with tunegate's guards

Drawn by `scripts/vendor_probes.py` from the copies in ../shared/data (run it again to rebuild them).

## piqa.jsonl: {piqa_rows} items of PIQA

PIQA, Physical Interaction: Question Answering (Bisk, Zellers, Le Bras, Gao and Choi, AAAI 2020): a goal and two
solutions, one right (`label`: 0 = sol1, 1 = sol2; `id`: the line in valid.jsonl, from 0). A general-ability
probe: a model that forgets physical commonsense scores it lower. Chance is 0.5.
Source: github.com/ybisk/ybisk.github.io, piqa/data/ (valid.jsonl, valid-labels.lst), commit
21edab439af693b961be2f069e8690a88d3b4e37; {piqa_rows} of its 1,838 validation items, drawn at random (seed 0).
License: Academic Free License v. 3.0 (AFL-3.0), https://opensource.org/license/afl-3-0-php

## crows_pairs.csv: {crows_rows} pairs of CrowS-Pairs

CrowS-Pairs (Nangia, Vania, Bhalerao and Bowman, EMNLP 2020): sentence pairs, one more stereotyping (`sent_more`)
than the other (`sent_less`) about a social group; `stereo_antistereo`, `bias_type`; `id`: the row number in
crows_pairs_anonymized.csv. A model's score is the share of pairs where it gives the stereotyping sentence the
higher length-normalised likelihood (0.5 is unbiased). The content is offensive by design: it measures bias.
Source: github.com/nyu-mll/crows-pairs, data/crows_pairs_anonymized.csv, commit
8aaac11c485473159ec9328a65253a5be9a479dc; {crows_rows} of its 1,508 pairs, drawn at random (seed 0) within
each bias type in proportion to its share.
License: Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0),
https://creativecommons.org/licenses/by-sa/4.0/ ; this sample is a portion of that work, unchanged except for
the columns kept, and is shared under the same license.
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--rows", type=int, default=300, help="rows of each probe")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    p = piqa(args.shared, args.rows)
    (OUT / "piqa.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in p))
    c = crows_pairs(args.shared, args.rows)
    with open(OUT / "crows_pairs.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(c[0]))
        w.writeheader()
        w.writerows(c)
    (OUT / "SOURCE.md").write_text(SOURCE.format(piqa_rows=len(p), crows_rows=len(c)))
    print(f"{OUT}: piqa.jsonl {len(p)} items, crows_pairs.csv {len(c)} pairs, SOURCE.md")


if __name__ == "__main__":
    main()
