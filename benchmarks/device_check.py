"""Device check: tunegate's training and scoring paths on this machine's accelerator, in one command.

    python benchmarks/device_check.py                 # CUDA when present, else the CPU
    python benchmarks/device_check.py --model gemma3-270m --steps 30

On the real model (built-in SmolLM2 by default) it runs, through tunegate's own code:

1. LoRA training in the hardware's auto precision (bf16 on GPUs that support it),
2. QLoRA training (4-bit NF4 base, bf16 compute on CUDA; bitsandbytes),
3. label scoring (SST-2 prompts, two labels) and greedy generation,

and prints, for each: tokens/s, model FLOP utilization against the GPU's dense bf16 peak
(training counted as 6 x parameters x tokens, the usual rule, although LoRA skips the frozen
weights' gradients; scoring and generation as 2 x parameters x tokens computed), the peak
GPU memory (torch.cuda.max_memory_allocated), and that the loss fell. A CPU run
prints the same without MFU (no peak is known), so the script itself is tested here.
Results are also written to benchmarks/results/device-<timestamp>.json (``--out`` elsewhere); the
exit code is 1 when a check failed or its loss did not fall.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2"

# dense bf16 tensor-core peaks (TFLOP/s, no sparsity), from the vendors' data sheets
BF16_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "A10G": 125.0,
    "A10": 125.0,
    "L40S": 362.0,
    "L4": 121.0,
    "RTX 4090": 165.0,
    "V100": 125.0,  # fp16 (no bf16)
    "T4": 65.0,  # fp16 (no bf16)
}


def gpu_peak_tflops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    for key, peak in BF16_PEAK_TFLOPS.items():
        if key in name:
            return peak
    return None


def sst2_rows(n: int) -> list[tuple[str, str]]:
    if SST2.is_dir():
        lines = (SST2 / "train.tsv").read_text().splitlines()[1:]
        pairs = (x.rsplit("\t", 1) for x in lines)
        rows = [(t.strip(), "positive" if y.strip() == "1" else "negative") for t, y in pairs]
    else:  # a machine without ../shared: a small built-in set
        words = ["great", "awful", "lovely", "boring", "superb", "dull", "moving", "tedious"]
        rows = [(f"a {w} film, {i}", ["positive", "negative"][k % 2]) for i in range(64) for k, w in enumerate(words)]
    return random.Random(0).sample(rows, min(n, len(rows)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="a built-in name, .gguf file or HF folder")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per training check")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rows", type=int, default=256, help="rows scored / generated from")
    ap.add_argument("--lr", type=float, default=2e-4, help="learning rate of both training checks")
    ap.add_argument("--skip-qlora", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for the JSON record")
    a = ap.parse_args()

    from tunegate import hardware
    from tunegate.answering import AnswerSpec, prompt_ids
    from tunegate.config import HardwareConfig, PromptConfig
    from tunegate.methods import TrainingSet, get_method
    from tunegate.methods.lora import LoraSettings
    from tunegate.methods.qlora import QLoraSettings
    from tunegate.modeling import load_model, load_tokenizer, parameter_count, resolve_model
    from tunegate.scoring import generate, score_answers

    placement = hardware.resolve(HardwareConfig())
    cuda = placement.device == "cuda"
    peak = gpu_peak_tflops()
    ref = resolve_model(a.model)
    tok = load_tokenizer(ref.path)
    n_params = parameter_count(ref.path)
    print(f"device: {placement.describe()}; model {ref.model_id}, {n_params / 1e6:.0f} M parameters")
    if cuda:
        print(f"GPU: {torch.cuda.get_device_name(0)}, bf16 peak {peak or '?'} TFLOP/s")
    labels = {"negative": "negative", "positive": "positive"}
    spec = AnswerSpec(task="classification", prompt=PromptConfig(), labels=labels, max_length=256, max_new_tokens=16)
    builder = spec.builder(tok)
    rows = sst2_rows(max(a.rows, a.steps * a.batch_size))
    results: dict[str, dict] = {}

    def mem_reset():
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def mem_peak() -> float | None:
        return round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None

    def mfu(flops: float, seconds: float) -> float | None:
        return None if peak is None else round(100 * flops / seconds / (peak * 1e12), 1)

    with hardware.using(placement):
        train_rows = rows[: a.steps * a.batch_size]
        examples = [builder.training_example(t, y, 256) for t, y in train_rows]
        data = TrainingSet(
            task="classification",
            prompt_ids=[p for p, _ in examples],
            answer_ids=[x for _, x in examples],
            pad_id=tok.pad_token_id,
            fingerprint="",
            labels=list(labels),
            label_index=[list(labels).index(y) for _, y in train_rows],
        )
        checks = [("lora", LoraSettings(epochs=1, batch_size=a.batch_size, max_steps=a.steps, lr=a.lr))]
        if not a.skip_qlora:
            checks.append(("qlora", QLoraSettings(epochs=1, batch_size=a.batch_size, max_steps=a.steps, lr=a.lr)))
        for name, settings in checks:
            mem_reset()
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    art = get_method(name).train(base_path=ref.path, data=data, cfg=settings, out_dir=Path(tmp))
                except Exception as exc:  # noqa: BLE001 - report and go on (e.g. no bitsandbytes build)
                    results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                    print(f"{name}: FAILED {results[name]['error']}")
                    continue
            st = art.train_stats
            first, last = sum(st.losses[:3]) / 3, sum(st.losses[-3:]) / 3
            results[name] = {
                "steps": st.steps,
                "tokens_per_s": round(st.tokens_per_s, 1),
                "mfu_pct": mfu(6 * n_params * st.tokens, st.seconds),
                "peak_gpu_gb": mem_peak(),
                "loss_first3": round(first, 4),
                "loss_last3": round(last, 4),
                "loss_fell": last < first,
            }
            print(f"{name}: {results[name]}")

        model = load_model(ref.path)
        texts = [t for t, _ in rows[: a.rows]]
        ids = prompt_ids(spec, tok, texts)
        answers = builder.label_answer_ids()
        score_answers(model, ids[: a.batch_size], answers, pad_id=tok.pad_token_id)  # warm-up
        mem_reset()
        t0 = time.perf_counter()
        scores, sst = score_answers(model, ids, answers, pad_id=tok.pad_token_id, batch_size=32)
        if cuda:
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        gold = [y for _, y in rows[: a.rows]]
        acc = sum(list(labels)[i] == y for i, y in zip(scores.argmax(1).tolist(), gold)) / len(gold)
        results["scoring"] = {
            "examples_per_s": round(len(ids) / secs, 1),
            "tokens_per_s": round(sst.computed_tokens / secs, 1),
            "mfu_pct": mfu(2 * n_params * sst.computed_tokens, secs),
            "peak_gpu_gb": mem_peak(),
            "zero_shot_accuracy": round(acc, 3),
        }
        print(f"scoring: {results['scoring']}")
        gen_spec = AnswerSpec(task="generation", prompt=PromptConfig(), labels={}, max_length=256, max_new_tokens=32)
        gids = prompt_ids(gen_spec, tok, texts[:64])
        mem_reset()
        t0 = time.perf_counter()
        texts_out, gst = generate(
            model, tok, gids, max_new_tokens=32, batch_size=32, stop_ids=gen_spec.builder(tok).stop_ids()
        )
        secs = time.perf_counter() - t0
        results["generation"] = {
            "output_tokens_per_s": round(gst.output_tokens / secs, 1),
            "mfu_pct": mfu(2 * n_params * (gst.output_tokens + gst.prompt_tokens), secs),
            "peak_gpu_gb": mem_peak(),
            "sample": texts_out[0][:80],
        }
        print(f"generation: {results['generation']}")

    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"device-{time.strftime('%Y%m%d-%H%M%S')}.json"
    record = {"placement": placement.model_dump(), "model": ref.model_id, "gpu_peak_tflops": peak, **results}
    path.write_text(json.dumps(record, indent=1))
    print(f"written: {path}")
    failed = [k for k, v in results.items() if "error" in v or v.get("loss_fell") is False]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
