"""LoRA training with the rows' shared prefix run once per micro-batch, side by side with every row run whole.

    python benchmarks/bench_training.py                      # SST-2 (2 labels) and TREC-50, micro-batch 4 and 16
    python benchmarks/bench_training.py --data trec50 --micro 16 --steps 4 --dtype float32

The reference ("whole") is the same loop with the shared-prefix path switched off, i.e. what every
row-at-a-time trainer (the plain peft loop, transformers' Trainer) computes. Each measurement is its
own process (peak RSS comparable), the two modes interleaved, same rows and seed. Prints training
tokens/s (prompt + answer tokens of the rows, the same count for both), seconds, peak RSS, and the
largest difference between the two loss curves (float32: ~1e-6; bf16 rounds differently).
Data from ../shared/data: SST-2 (a one-line instruction: ~40 shared tokens of ~65 per row) and TREC
with its 50 fine labels listed in the instruction (~270 shared tokens of ~285).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
INSTRUCTIONS = {
    "sst2": "Classify the sentiment of this movie review as positive or negative.",
    "trec50": "What kind of answer does this question ask for? Answer with one of: {labels}.",
}


def rows(name: str, n: int) -> tuple[list[tuple[str, str]], list[str]]:
    if name == "sst2":
        lines = (DATA / "sst2" / "train.tsv").read_text().splitlines()[1:]
        split = (x.rsplit("\t", 1) for x in lines)
        pairs = [(t.strip(), "positive" if y.strip() == "1" else "negative") for t, y in split]
    else:
        lines = (DATA / "trec" / "train_5500.label").read_text(encoding="latin-1").splitlines()
        pairs = [(text.strip(), label) for label, text in (x.split(" ", 1) for x in lines if x.strip())]
    labels = sorted({y for _, y in pairs})
    return random.Random(0).sample(pairs, n), labels


def worker(a) -> None:
    import torch

    from tunegate import hardware, training
    from tunegate.config import PromptConfig
    from tunegate.methods import TrainingSet, get_method
    from tunegate.methods.lora import LoraSettings
    from tunegate.modeling import load_tokenizer, resolve_model
    from tunegate.prompts import PromptBuilder
    from tunegate.records import Placement

    torch.set_num_threads(2)
    if a.mode == "whole":
        training.SHARED_PREFIX_MIN_TOKENS = 10**9  # the reference: every row runs its prefix itself
    hold = hardware.using(Placement(dtype=a.dtype, reason="benchmark")) if a.dtype != "auto" else None
    if hold is not None:
        hold.__enter__()
    ref = resolve_model(a.model)
    tok = load_tokenizer(ref.path)
    data, labels = rows(a.data, a.steps * 16)
    builder = PromptBuilder(
        tok, PromptConfig(instruction=INSTRUCTIONS[a.data], input_prefix="Input: "), "classification", labels
    )
    ex = [builder.training_example(t, y, 512) for t, y in data]
    ts = TrainingSet(
        task="classification",
        prompt_ids=[p for p, _ in ex],
        answer_ids=[x for _, x in ex],
        pad_id=tok.pad_token_id,
        fingerprint="",
        labels=labels,
        label_index=[labels.index(y) for _, y in data],
    )
    cfg = LoraSettings(epochs=1, batch_size=16, micro_batch_size=a.micro, max_steps=a.steps, lr=2e-4, max_length=512)
    with tempfile.TemporaryDirectory() as tmp:
        art = get_method("lora").train(base_path=ref.path, data=ts, cfg=cfg, out_dir=Path(tmp), progress=False)
    st = art.train_stats
    shared = training.shared_prefix_length(training.collate(ex, tok.pad_token_id))
    print(
        json.dumps(
            dict(
                dtype=hardware.current().dtype,
                tokens_per_s=st.tokens_per_s,
                seconds=st.seconds,
                peak_rss_mb=st.peak_rss_mb,
                losses=st.losses,
                tokens_per_row=st.tokens / (a.steps * 16),
                shared=shared,
            )
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="sst2,trec50", help="comma-separated: sst2, trec50")
    ap.add_argument("--micro", default="4,16", help="comma-separated micro-batch sizes (batch 16)")
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps of 16 rows each")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved runs of each mode")
    ap.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--mode", choices=["shared", "whole"], help=argparse.SUPPRESS)  # one measurement (internal)
    a = ap.parse_args()
    if a.mode:
        return worker(a)
    from tunegate import hardware

    print(f"machine: {hardware.cpu_kind()}; --dtype {a.dtype} (auto: {hardware.current().dtype} here)")
    print("| data | micro | mode | tokens/row (shared) | train tokens/s | seconds | peak RSS MB | max loss diff |")
    print("|---|---|---|---|---|---|---|---|")
    for data in a.data.split(","):
        for micro in [int(m) for m in a.micro.split(",")]:
            got: dict[str, list[dict]] = {"whole": [], "shared": []}
            for _ in range(a.repeats):
                for mode in ("whole", "shared"):
                    cmd = [sys.executable, __file__, "--mode", mode, "--data", data, "--micro", str(micro)]
                    cmd += ["--steps", str(a.steps), "--dtype", a.dtype, "--model", a.model]
                    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                    got[mode].append(json.loads(out.strip().splitlines()[-1]))
            diff = max(abs(x - y) for x, y in zip(got["whole"][0]["losses"], got["shared"][0]["losses"]))
            for mode in ("whole", "shared"):
                runs = got[mode]
                tps = " / ".join(f"{r['tokens_per_s']:.0f}" for r in runs)
                secs = " / ".join(f"{r['seconds']:.0f}" for r in runs)
                r0 = runs[0]
                print(
                    f"| {data} | {micro} | {mode} | {r0['tokens_per_row']:.0f} ({r0['shared']}) | {tps} | {secs} | "
                    f"{max(r['peak_rss_mb'] for r in runs):.0f} | {diff:.1e} ({r0['dtype']}) |"
                )


if __name__ == "__main__":
    main()
