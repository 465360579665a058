"""One measurement of tunegate's own code in a fresh process (so peak RSS is comparable).

Used by bench_pipeline.py; prints one JSON line. Same rows, labels and hyperparameters
as the peer loop (../shared/reference/peer-loops/train_peft.py).
"""

import argparse
import json
import random
import resource
import time
from pathlib import Path

import polars as pl
import torch

from tunegate.config import LoraConfig, PromptConfig
from tunegate.methods import get_method
from tunegate.modeling import load_model, load_tokenizer, resolve_model
from tunegate.prompts import PromptBuilder
from tunegate.scoring import answer_token_ids, score_answers

ap = argparse.ArgumentParser()
ap.add_argument("--mode", choices=["lora", "score"], required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--n-train", type=int, default=1000)
ap.add_argument("--n-test", type=int, default=None)
ap.add_argument("--out", required=True)
a = ap.parse_args()
torch.set_num_threads(2)


def split(name, n=None, seed=0):
    df = pl.read_csv(Path(a.data) / f"{name}.tsv", separator="\t", quote_char=None)
    rows = list(zip([s.strip() for s in df["sentence"].to_list()], df["label"].to_list()))
    return random.Random(seed).sample(rows, n) if n is not None else rows


WORDS = {0: "negative", 1: "positive"}
model_ref = resolve_model("smollm2-135m-instruct")
tok = load_tokenizer(model_ref.path)
b = PromptBuilder(tok, PromptConfig(system=None, instruction="Classify the sentiment of this movie review as positive or negative.",
                                    input_prefix="Review: "), "classification", list(WORDS.values()))
test = split("test")[: a.n_test] if a.n_test else split("test")
result = {"mode": a.mode}
if a.mode == "lora":
    cfg = LoraConfig(r=8, alpha=16, target_modules="all-linear", epochs=1, lr=2e-4, batch_size=16, max_length=256)
    train = split("train", a.n_train)
    ex = [b.training_example(s, WORDS[y], cfg.max_length) for s, y in train]
    art = get_method("lora").train(base_path=model_ref.path, examples=ex, cfg=cfg, pad_id=tok.pad_token_id,
                                   out_dir=Path(a.out), progress=False)
    st = art.train_stats
    model = get_method("lora").load_for_inference(base_path=model_ref.path, artifact_dir=Path(a.out))
    result.update(train_rows=len(train), steps=st.steps, train_s=st.seconds, train_tok=st.tokens, padded_tok=st.padded_tokens,
                  train_tok_per_s=st.tokens_per_s, peak_rss_train_mb=st.peak_rss_mb, first_loss=st.losses[0],
                  last5_loss=st.losses[-5:], config=cfg.model_dump())
else:
    model = load_model(model_ref.path)
prompts = [b.encode(b.render(s)) for s, _ in test]
scores, sst = score_answers(model, prompts, answer_token_ids(b, list(WORDS.values())), pad_id=tok.pad_token_id, batch_size=16)
pred = scores.argmax(1).tolist()
result.update(n_test=len(test), test_acc=sum(p == y for p, (_, y) in zip(pred, test)) / len(test),
              frac_pred_pos=sum(pred) / len(pred), eval_ex_per_s=len(test) / sst.seconds,
              avg_prompt_tokens=sst.prompt_tokens / len(test),
              peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(result))
