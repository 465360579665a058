"""Derive a score-prediction (regression) dataset from the real E2E NLG data in ../shared/data/e2e_nlg.

Each E2E reference text describes a restaurant from a meaning representation; when the
representation has a `customer rating`, the text usually says it in words ("5 star",
"highly rated", "low customer rating"). Target: that rating as a number (1 out of 5 /
low -> 1, 3 out of 5 / average -> 3, 5 out of 5 / high -> 5). Text: the reference.

    python examples/e2e_rating/make_data.py [--out examples/e2e_rating/data] [--train 400] [--eval 200]

Writes train.csv (from trainset.csv) and eval.csv (from devset.csv): columns text, rating.
The derived files are not committed (the source data stays in ../shared).
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[1].parent / "shared" / "data" / "e2e_nlg"
RATING = {"1 out of 5": 1, "low": 1, "3 out of 5": 3, "average": 3, "5 out of 5": 5, "high": 5}


def derive(src: Path, n: int, seed: int) -> pl.DataFrame:
    df = pl.read_csv(src)
    rows = []
    for mr, ref in df.select("mr", "ref").iter_rows():
        m = re.search(r"customer rating\[([^\]]+)\]", mr)
        if m and m.group(1) in RATING and ref and ref.strip():
            rows.append((ref.strip(), RATING[m.group(1)]))
    rows = list(dict.fromkeys(rows))  # distinct (text, rating) pairs, first occurrence order
    random.Random(seed).shuffle(rows)
    return pl.DataFrame({"text": [r[0] for r in rows[:n]], "rating": [r[1] for r in rows[:n]]})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=SOURCE, help="the e2e_nlg folder (default: ../shared/data/e2e_nlg)")
    ap.add_argument("--out", type=Path, default=HERE / "data")
    ap.add_argument("--train", type=int, default=400, help="train rows (from trainset.csv)")
    ap.add_argument("--eval", type=int, default=200, help="eval rows (from devset.csv)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    derive(a.source / "trainset.csv", a.train, a.seed).write_csv(a.out / "train.csv")
    derive(a.source / "devset.csv", a.eval, a.seed).write_csv(a.out / "eval.csv")
    print(f"wrote {a.out / 'train.csv'} and {a.out / 'eval.csv'}")


if __name__ == "__main__":
    main()
