"""Label scoring on the real model, many labels and few-shot: today's scorer vs the one before, in one run.

For each task (SST-2: 2 labels; TREC: 6 coarse and 50 fine labels, from ../shared/data) and
rung (zero-shot; a fixed 4-shot prompt), the same prompts are scored by

- ``before``: the scorer of tunegate d50747b (``_legacy_scorer.py``): left-padded prompts,
  then one KV-cache forward per multi-token label; its few-shot prompt repeated the instruction
  (with every label) in each demonstration turn;
- ``now``: ``tunegate.scoring.score_answers``: the rows' shared prefix encoded once, all
  labels in the same forward as a trie, the output layer only where it is read; the instruction
  once, in the first turn;

and prints examples/s for each, the speed-up, each rung's cost relative to its task's
2-label zero-shot (targets: 50 labels at most 2x the cost of 2 labels; fixed 4-shot at most
1.5x zero-shot), accuracy on each side, and, where both sides score the same prompt (zero-shot), the largest
difference between the two scorers' label log-probs (they compute the same numbers).
``--dtype bfloat16`` loads the weights in bf16 (fast on CPUs with AMX / AVX-512 BF16, slow elsewhere);
the machine kind is printed.

    python benchmarks/bench_scoring.py [--rows 128] [--dtype float32|bfloat16] [--tasks sst2 trec6 trec50]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _legacy_scorer import legacy_prompt_ids  # noqa: E402
from _legacy_scorer import score_answers as legacy_score  # noqa: E402

from tunegate import hardware  # noqa: E402
from tunegate.answering import AnswerSpec, prompt_ids  # noqa: E402
from tunegate.config import PromptConfig  # noqa: E402
from tunegate.modeling import load_model, load_tokenizer, resolve_model  # noqa: E402
from tunegate.scoring import score_answers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
COARSE = {
    "ABBR": "abbreviation",
    "DESC": "description",
    "ENTY": "entity",
    "HUM": "human",
    "LOC": "location",
    "NUM": "number",
}


def sst2(rows: int):
    lines = (DATA / "sst2" / "test.tsv").read_text().splitlines()[1:]
    train = (DATA / "sst2" / "train.tsv").read_text().splitlines()[1:]
    words = {"0": "negative", "1": "positive"}

    def parse(line):
        text, label = line.rsplit("\t", 1)
        return text.strip(), words[label.strip()]

    return [parse(x) for x in lines], [parse(x) for x in train[:2000]], list(words.values())


def trec(fine: bool):
    def parse(line):
        tag, text = line.split(" ", 1)
        coarse, sub = tag.split(":")
        return text.strip(), f"{COARSE[coarse]} {sub}" if fine else COARSE[coarse]

    test = [parse(x) for x in (DATA / "trec" / "TREC_10.label").read_text().splitlines() if x.strip()]
    train = [parse(x) for x in (DATA / "trec" / "train_5500.label").read_bytes().decode("latin-1").splitlines()]
    return test, train, sorted({y for _, y in train})


TASKS = {"sst2": lambda: sst2(0), "trec6": lambda: trec(False), "trec50": lambda: trec(True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=128, help="eval rows scored per task and rung")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = ap.parse_args()
    torch.set_num_threads(2)
    ref = resolve_model("smollm2-135m-instruct")
    tok = load_tokenizer(ref.path)
    model = load_model(ref.path, dtype=getattr(torch, a.dtype))
    print(f"machine: {hardware.cpu_kind()}; weights: {a.dtype}; {a.rows} rows per rung; batch {a.batch_size}")
    rows = []
    for task in a.tasks:
        test, train, labels = TASKS[task]()
        test = random.Random(0).sample(test, min(a.rows, len(test)))
        shots = random.Random(1).sample(train, 4)
        spec = AnswerSpec(
            task="classification",
            prompt=PromptConfig(),
            labels={lab: lab for lab in labels},
            max_length=512,
            max_new_tokens=8,
        )
        answers = spec.builder(tok).label_answer_ids()
        texts = [t for t, _ in test]
        for rung, demos in (("zero-shot", None), ("fixed 4-shot", [shots] * len(texts))):
            sides = {
                "before": (legacy_score, legacy_prompt_ids(spec, tok, texts, demos)),
                "now": (score_answers, prompt_ids(spec, tok, texts, shots=demos)),
            }
            res = {}
            for side, (fn, ids) in sides.items():
                fn(model, ids[: a.batch_size], answers, pad_id=tok.pad_token_id, batch_size=a.batch_size)  # warm-up
                t0 = time.perf_counter()
                scores, _ = fn(model, ids, answers, pad_id=tok.pad_token_id, batch_size=a.batch_size)
                res[side] = (scores, time.perf_counter() - t0)
            logp = {s: torch.log_softmax(v[0], 1) for s, v in res.items()}
            acc = {
                s: sum(labels[i] == y for i, (_, y) in zip(lp.argmax(1).tolist(), test)) / len(test)
                for s, lp in logp.items()
            }
            same = sides["before"][1] == sides["now"][1]
            rows.append(
                {
                    "task": task,
                    "labels": len(labels),
                    "rung": rung,
                    "prompt_tokens_before": round(sum(map(len, sides["before"][1])) / len(texts), 1),
                    "prompt_tokens": round(sum(map(len, sides["now"][1])) / len(texts), 1),
                    "before_ex_s": len(texts) / res["before"][1],
                    "now_ex_s": len(texts) / res["now"][1],
                    "accuracy_before": acc["before"],
                    "accuracy": acc["now"],
                    "max_logprob_diff": float((logp["now"] - logp["before"]).abs().max()) if same else None,
                }
            )
            r = rows[-1]
            print(
                f"  {task:7} {rung:13} {r['before_ex_s']:7.2f} -> {r['now_ex_s']:7.2f} ex/s "
                f"({r['now_ex_s'] / r['before_ex_s']:.1f}x)",
                flush=True,
            )
    base = {r["task"]: r["now_ex_s"] for r in rows if r["rung"] == "zero-shot"}
    two = next((r["now_ex_s"] for r in rows if r["labels"] == 2 and r["rung"] == "zero-shot"), None)
    print()
    print(
        "| task | labels | rung | prompt tokens before -> now | before ex/s | now ex/s | speed-up "
        "| cost vs 2-label zero-shot | cost vs own zero-shot | accuracy before -> now | max |dlogp| |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        vs2 = f"{two / r['now_ex_s']:.2f}x" if two else "-"
        diff = "-" if r["max_logprob_diff"] is None else f"{r['max_logprob_diff']:.1e}"
        print(
            f"| {r['task']} | {r['labels']} | {r['rung']} | {r['prompt_tokens_before']} -> {r['prompt_tokens']} | "
            f"{r['before_ex_s']:.2f} | {r['now_ex_s']:.2f} | {r['now_ex_s'] / r['before_ex_s']:.1f}x | {vs2} | "
            f"{base[r['task']] / r['now_ex_s']:.2f}x | {r['accuracy_before']:.3f} -> {r['accuracy']:.3f} | {diff} |"
        )
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"scoring-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"machine": hardware.cpu_kind(), "dtype": a.dtype, "rows": rows}, indent=1))
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
