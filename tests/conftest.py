"""Shared fixtures: a tiny random llama (fast unit tests) and the real SmolLM2 (integration)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def real_model():
    """The default model, resolved (the GGUF is converted once into the user cache)."""
    from tunegate.modeling import resolve_model

    return resolve_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, real_model) -> Path:
    """A 2-layer random llama with SmolLM2's real tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    tok = AutoTokenizer.from_pretrained(real_model.path)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        # a larger init than the default 0.02 lets a 32-wide model reach confident logits over a 49k vocabulary
        initializer_range=0.3,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    for extra in ("chat_template.jinja",):
        src = Path(real_model.path) / extra
        if src.exists() and not (out / extra).exists():
            shutil.copy(src, out / extra)
    return out


@pytest.fixture(scope="session")
def tiny_arch_dir(tmp_path_factory, tiny_model_dir):
    """``tiny_arch_dir(arch)``: a saved tiny random model of that architecture with SmolLM2's tokenizer."""
    from transformers import AutoTokenizer

    made: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch == "llama":
            return tiny_model_dir
        if arch not in made:
            tok = AutoTokenizer.from_pretrained(tiny_model_dir)
            out = tmp_path_factory.mktemp(f"tiny-{arch}")
            ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
            tiny_causal_lm(arch, len(tok), **ids).save_pretrained(out)
            if arch == "gemma3":  # like the real Gemma 3 270M: a base model, no chat template (plain prompts)
                tok.chat_template = None
            tok.save_pretrained(out)
            if arch != "gemma3":
                shutil.copy(tiny_model_dir / "chat_template.jinja", out / "chat_template.jinja")
            made[arch] = out
        return made[arch]

    return make


@pytest.fixture
def float32():
    """Run the test's model code in float32 on the CPU (tests of exact numerics; the machine default may be bf16)."""
    from tunegate.hardware import using
    from tunegate.records import Placement

    with using(Placement()):
        yield


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from tunegate.modeling import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def write_csv(path: Path, rows: list[tuple[str, str]], header=("text", "label")) -> Path:
    import polars as pl

    pl.DataFrame({header[0]: [r[0] for r in rows], header[1]: [r[1] for r in rows]}).write_csv(path)
    return path


TOPICS = {
    "pos": [
        "a wonderful film",
        "I loved every minute",
        "brilliant acting",
        "great fun",
        "truly moving story",
        "a delight",
        "superb direction",
        "warm and funny",
        "excellent cast",
        "beautifully shot",
    ],
    "neg": [
        "a boring mess",
        "I hated it",
        "terrible acting",
        "a waste of time",
        "dull and slow",
        "awful script",
        "painfully bad",
        "lifeless and flat",
        "poor direction",
        "a tedious bore",
    ],
}


def write_toy_data(folder: Path) -> dict[str, Path]:
    """A small clean classification dataset (train + eval files) written into ``folder``."""
    train = [(t, lab) for lab, texts in TOPICS.items() for t in texts[:7]]
    evl = [(t, lab) for lab, texts in TOPICS.items() for t in texts[7:]]
    return {"train": write_csv(folder / "train.csv", train), "eval": write_csv(folder / "eval.csv", evl)}


@pytest.fixture
def toy_data(tmp_path) -> dict[str, Path]:
    """A small clean classification dataset (train + eval files)."""
    return write_toy_data(tmp_path)


def make_config(tmp_path: Path, model: str, files: dict, **sections) -> Path:
    """Write a YAML config for the tiny model into tmp_path."""
    import yaml

    raw = {
        "task": "classification",
        "model": str(model),
        "data": {
            "train": str(files["train"]),
            "labels": ["pos", "neg"],
            **({"eval": str(files["eval"])} if "eval" in files else {}),
        },
        "baselines": {"zero_shot": True, "few_shot": {"k": 2}, "batch_size": 4},
        "method": {
            "name": "lora",
            "r": 2,
            "alpha": 4,
            "epochs": 1,
            "max_steps": 2,
            "batch_size": 4,
            "micro_batch_size": 2,
            "max_length": 64,
        },
        "gate": {"bootstrap_samples": 200},
        "guards": False,  # tests of the guards turn them on (test_guards.py, the flow and SST-2 runs)
        "registry": {"path": str(tmp_path / "registry"), "model_name": "toy"},
        "output": {"dir": str(tmp_path / "runs")},
    }
    for key, value in sections.items():
        other_method = key == "method" and isinstance(value, dict) and value.get("name", "lora") != "lora"
        if isinstance(value, dict) and isinstance(raw.get(key), dict) and not other_method:
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def pipeline_run(cfg):
    """Every stage as the flow runs them, production included, without Prefect; returns (run, decision, deployed)."""
    from tunegate import stages
    from tunegate.ladder.core import baseline_rungs
    from tunegate.records import GateInputs

    run = stages.prepare_run(cfg)
    val = stages.validate_data(cfg, run)
    cfg = cfg.with_resolved(val.resolved)  # as the flows do
    results = {}
    for r in baseline_rungs(cfg.baselines, cfg.ladder_context()):
        results[r.name] = stages.evaluate_baseline(cfg, run, val.dataset, r, results[r.base.name] if r.base else None)
    tuned = stages.tune(cfg, run, val.dataset, progress=False)
    tuned_eval = stages.evaluate_tuned(cfg, run, val.dataset, tuned)
    baselines = list(results.values())
    guarded = stages.check_guards(cfg, run, val.dataset, baselines, tuned, tuned_eval)
    champion = stages.evaluate_production(cfg, run, val.dataset)
    decision = stages.compare(
        cfg,
        run,
        val.dataset,
        GateInputs(baselines=baselines, tuned_eval=tuned_eval, tuned=tuned, production=champion, guards=guarded),
    )
    return run, decision, stages.deploy(cfg, run, decision, tuned, champion)


ARCHITECTURES = ["llama", "gemma3", "qwen2", "mistral", "phi3"]


def tiny_causal_lm(arch: str, vocab_size: int, seed: int = 0, **special):
    """A tiny random causal LM of one architecture; attention windows shorter than test prompts (8 tokens)."""
    import torch
    import transformers as tf

    common = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.3,
    )
    common.update({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, **special})
    cfg = {
        "llama": lambda: tf.LlamaConfig(num_hidden_layers=2, tie_word_embeddings=True, **common),
        "gemma3": lambda: tf.Gemma3TextConfig(
            num_hidden_layers=3,
            head_dim=8,
            sliding_window=8,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"],
            final_logit_softcapping=30.0,
            **common,
        ),
        "qwen2": lambda: tf.Qwen2Config(
            num_hidden_layers=2, use_sliding_window=True, sliding_window=8, max_window_layers=1, **common
        ),
        "mistral": lambda: tf.MistralConfig(num_hidden_layers=2, sliding_window=8, **common),
        "phi3": lambda: tf.Phi3Config(num_hidden_layers=2, sliding_window=8, **common),
    }[arch]()
    torch.manual_seed(seed)
    return tf.AutoModelForCausalLM.from_config(cfg)


def tune_result(**kw):
    """A TuneResult with placeholder numbers (for tests of what is computed from it)."""
    from tunegate.records import TuneResult

    fields = dict(
        method="lora",
        artifact_dir=".",
        train_seconds=1.0,
        peak_rss_mb=1,
        trainable_params=1,
        total_params=2,
        n_steps=1,
        n_train_tokens=1,
        tokens_per_s=1,
        loss_curve=[1.0],
        epoch_losses=[1.0],
        checkpoints=[],
    )
    return TuneResult(**{**fields, **kw})
