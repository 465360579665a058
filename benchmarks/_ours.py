"""One measurement of tunegate's own code in a fresh process (so peak RSS is comparable).

Used by bench_pipeline.py; prints one JSON line. Same rows, labels and hyperparameters
as the peer scripts (../shared/reference/peer-loops/train_peft.py, linear_probe.py).
"""

import argparse
import contextlib
import json
import random
import resource
from pathlib import Path

import polars as pl
import torch

from tunegate import hardware
from tunegate.config import PromptConfig
from tunegate.methods import TrainingSet, get_method
from tunegate.methods.linear_probe import LinearProbeSettings
from tunegate.methods.lora import LoraSettings
from tunegate.methods.prompt_tuning import PromptTuningSettings
from tunegate.methods.qlora import QLoraSettings
from tunegate.modeling import load_model, load_tokenizer, resolve_model
from tunegate.prompts import PromptBuilder
from tunegate.records import Placement
from tunegate.scoring import LMAnswerer

ap = argparse.ArgumentParser()
ap.add_argument("--mode", choices=["lora", "qlora", "prompt_tuning", "linear_probe", "score"], required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--n-train", type=int, default=1000)
ap.add_argument("--n-test", type=int, default=None)
ap.add_argument("--max-steps", type=int, default=None)
ap.add_argument("--seed", type=int, default=0, help="training rows drawn and training seed (as the peer's --seed)")
ap.add_argument("--out", required=True)
ap.add_argument(
    "--dtype",
    choices=["auto", "float32", "bfloat16"],
    default="auto",
    help="the run's precision (auto: what hardware: auto picks on this machine)",
)
a = ap.parse_args()
torch.set_num_threads(2)
placed = contextlib.ExitStack()  # held to the end: the whole measurement under --dtype, as a run with hardware.dtype
if a.dtype != "auto":
    placed.enter_context(hardware.using(Placement(dtype=a.dtype, reason="benchmark --dtype")))


def split(name, n=None, seed=0):
    df = pl.read_csv(Path(a.data) / f"{name}.tsv", separator="\t", quote_char=None)
    rows = list(zip([s.strip() for s in df["sentence"].to_list()], df["label"].to_list()))
    return random.Random(seed).sample(rows, n) if n is not None else rows


WORDS = {0: "negative", 1: "positive"}
INSTRUCTION = "Classify the sentiment of this movie review as positive or negative."
# the peer's settings for each method (train_peft.py / linear_probe.py)
CONFIGS = {
    "lora": LoraSettings(r=8, alpha=16, target_modules="all-linear", epochs=1, lr=2e-4, batch_size=16, max_length=256),
    "qlora": QLoraSettings(
        r=8, alpha=16, target_modules="all-linear", epochs=1, lr=2e-4, batch_size=16, max_length=256
    ),
    "prompt_tuning": PromptTuningSettings(
        num_virtual_tokens=20, init="text", init_text=INSTRUCTION, lr=3e-2, epochs=1, batch_size=16, max_length=256
    ),
    "linear_probe": LinearProbeSettings(max_length=256),
}
model_ref = resolve_model("smollm2-135m-instruct")
tok = load_tokenizer(model_ref.path)
b = PromptBuilder(
    tok,
    PromptConfig(system=None, instruction=INSTRUCTION, input_prefix="Review: "),
    "classification",
    list(WORDS.values()),
)
test = split("test")[: a.n_test] if a.n_test else split("test")
result = {"mode": a.mode, "seed": a.seed, "dtype": hardware.current().dtype}
if a.mode == "score":
    answerer = LMAnswerer(load_model(model_ref.path))
else:
    cfg = CONFIGS[a.mode]
    if a.max_steps:
        cfg = cfg.model_copy(update={"max_steps": a.max_steps})
    cfg = cfg.model_copy(update={"seed": a.seed})
    train = split("train", a.n_train, seed=a.seed)
    ex = [b.training_example(s, WORDS[y], cfg.max_length) for s, y in train]
    data = TrainingSet(
        task="classification",
        prompt_ids=[p for p, _ in ex],
        answer_ids=[t for _, t in ex],
        pad_id=tok.pad_token_id,
        fingerprint="",
        labels=["0", "1"],
        label_index=[y for _, y in train],
        instruction=INSTRUCTION,
    )
    method = get_method(a.mode)
    art = method.train(base_path=model_ref.path, data=data, cfg=cfg, out_dir=Path(a.out), progress=False)
    st = art.train_stats
    answerer = method.load_for_inference(base_path=model_ref.path, artifact_dir=Path(a.out))
    result.update(
        train_rows=len(train),
        steps=st.steps,
        train_s=st.seconds,
        train_tok=st.tokens,
        padded_tok=st.padded_tokens,
        train_tok_per_s=st.tokens_per_s,
        peak_rss_train_mb=st.peak_rss_mb,
        first_loss=st.losses[0],
        last5_loss=st.losses[-5:],
        trainable_params=art.trainable_params,
        base_footprint_mb=art.base_footprint_mb,
        extra=st.extra,
        config=cfg.model_dump(),
    )
    if a.mode == "linear_probe":
        result["feature_ex_per_s"] = len(train) / st.extra["feature_seconds"]
prompts = [b.encode(b.render(s)) for s, _ in test]
scores, sst = answerer.score(prompts, b.label_answer_ids(), pad_id=tok.pad_token_id, batch_size=16)
pred = scores.argmax(1).tolist()
result.update(
    n_test=len(test),
    test_acc=sum(p == y for p, (_, y) in zip(pred, test)) / len(test),
    frac_pred_pos=sum(pred) / len(pred),
    eval_ex_per_s=len(test) / sst.seconds,
    avg_prompt_tokens=sst.prompt_tokens / len(test),
    peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
)
print(json.dumps(result))
