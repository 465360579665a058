"""Linear probe: a linear head on frozen features of the base model. Classification and regression.

Features are the decoder's hidden states of the same chat prompt the other methods
see (last token or mean over tokens, any layer). They are extracted once per
dataset + prompts + base model + pooling + layer and cached; the head (a torch
``Linear`` on standardized features) trains with AdamW weight decay and early
stopping on a held-out split of train, and the best epoch's weights are kept.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tunegate import hardware
from tunegate.methods.base import AdviceContext, Rule, TrainedArtifact, TrainingSet, TuningMethod
from tunegate.methods.settings import AUTO_MIN_LENGTH
from tunegate.modeling import cache_root, load_model, load_tokenizer, parameter_count
from tunegate.problems import task_type
from tunegate.progress import bar as progress_bar
from tunegate.provenance import sha256_json
from tunegate.scoring import (
    Answerer,
    ScoreStats,
    _left_pad,
    _positions,
    hidden_after_shared_prefix,
    shared_prompt_prefix,
)
from tunegate.training import PeakRSS, TrainStats, collate, runs_shared_prefix

PROBE_DIR = "probe"


@torch.inference_mode()
def extract_features(
    model,
    prompt_ids: list[list[int]],
    *,
    pad_id: int,
    pooling: str,
    layer: int,
    batch_size: int = 16,
    desc: str | None = None,
) -> torch.Tensor:
    """One feature vector per prompt, [n, hidden], from the decoder only (no output layer)."""
    decoder = model.get_decoder()
    device = model.get_input_embeddings().weight.device
    n = len(prompt_ids)
    order = sorted(range(n), key=lambda i: len(prompt_ids[i]))
    out: torch.Tensor | None = None
    bar = progress_bar(n, desc, "ex")
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        rows = [prompt_ids[i] for i in idx]
        p = shared_prompt_prefix(rows)
        if pooling == "last" and runs_shared_prefix(p, len(rows)):  # the shared instruction runs once per batch
            batch = collate([(row, []) for row in rows], pad_id)  # right-padded
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            h = hidden_after_shared_prefix(model, ids, mask, p, layer=layer)
            last = torch.tensor([len(row) - 1 - p for row in rows], device=device)
            feats = h[torch.arange(len(rows), device=device), last]
        else:
            ids, mask = (t.to(device) for t in _left_pad(rows, pad_id))
            kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=_positions(mask))
            if layer == -1:
                h = decoder(**kwargs).last_hidden_state
            else:
                h = decoder(**kwargs, output_hidden_states=True).hidden_states[layer]
            if pooling == "last":  # left-padded: the last position is every row's last real token
                feats = h[:, -1]
            else:
                m = mask.unsqueeze(-1).to(h.dtype)
                feats = (h * m).sum(1) / m.sum(1)
        if out is None:
            out = torch.empty((n, feats.shape[-1]), dtype=torch.float32)
        out[idx] = feats.float().cpu()
        bar.update(len(idx))
    bar.close()
    return out


def resolve_layer(base_path: str, layer: int | None) -> int:
    """The configured hidden-state index, or two thirds of the depth when unset."""
    if layer is not None:
        return layer
    from transformers import AutoConfig

    return round(AutoConfig.from_pretrained(base_path).num_hidden_layers * 2 / 3)


def cached_features(base_path: str, data: TrainingSet, cfg, desc: str | None = None) -> tuple[torch.Tensor, bool]:
    """Features of the training prompts, from the cache when this dataset+model+pooling+layer was seen
    (no caching when the training set has no fingerprint)."""
    layer = resolve_layer(base_path, cfg.layer)
    dtype = hardware.current().dtype  # bf16 features differ (slightly) from float32 ones
    key = sha256_json({"data": data.fingerprint, "pooling": cfg.pooling, "layer": layer, "dtype": dtype, "v": 1})[:32]
    path = cache_root() / "features" / f"{key}.pt"
    if data.fingerprint and path.is_file():
        return torch.load(path), True
    model = load_model(base_path)
    feats = extract_features(
        model,
        data.prompt_ids,
        pad_id=data.pad_id,
        pooling=cfg.pooling,
        layer=layer,
        batch_size=cfg.feature_batch_size,
        desc=desc,
    )
    if not data.fingerprint:
        return feats, False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(feats, tmp)
    os.replace(tmp, path)  # never a half-written cache entry
    return feats, False


def fit_head(x: torch.Tensor, y: torch.Tensor, n_out: int, cfg, progress: bool = False) -> tuple[dict, dict]:
    """Standardize, train a linear head with early stopping on a held-out split; best epoch kept.

    Classification (``y`` integer labels): cross-entropy over ``n_out`` labels. Regression
    (``y`` floats, ``n_out`` 1): squared error on the standardized target.
    """
    regression = y.is_floating_point()
    n = x.shape[0]
    g = torch.Generator().manual_seed(cfg.seed)
    perm = torch.randperm(n, generator=g)
    n_val = min(max(1, round(n * cfg.val_fraction)), n - 1)
    val, tr = perm[:n_val], perm[n_val:]
    mean = x[tr].mean(0)
    std = x[tr].std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    y_mean = y[tr].mean() if regression else torch.tensor(0.0)
    y_std = y[tr].std(unbiased=False).clamp_min(1e-6) if regression else torch.tensor(1.0)
    target = (y - y_mean) / y_std if regression else y

    def loss_of(out, t):
        return F.mse_loss(out.squeeze(-1), t) if regression else F.cross_entropy(out, t)

    torch.manual_seed(cfg.seed)
    head = torch.nn.Linear(x.shape[1], n_out)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best_loss, best_state, best_epoch, bad = float("inf"), copy.deepcopy(head.state_dict()), 0, 0
    train_losses: list[float] = []
    val_losses: list[float] = []
    steps = 0
    bar = progress_bar(cfg.epochs, "probe head", "epoch", enabled=progress)
    for epoch in range(cfg.epochs):
        order = tr[torch.randperm(len(tr), generator=g)]
        total = 0.0
        for s in range(0, len(order), cfg.batch_size):
            b = order[s : s + cfg.batch_size]
            loss = loss_of(head(z[b]), target[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
            steps += 1
        train_losses.append(total / len(tr))
        with torch.no_grad():
            vl = loss_of(head(z[val]), target[val]).item()
        val_losses.append(vl)
        bar.update(1)
        bar.set_postfix(train_loss=f"{train_losses[-1]:.4f}", val_loss=f"{vl:.4f}")
        if vl < best_loss - 1e-6:
            best_loss, best_state, best_epoch, bad = vl, copy.deepcopy(head.state_dict()), epoch + 1, 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    bar.close()
    head.load_state_dict(best_state)
    state = {
        "weight": head.weight.detach().clone(),
        "bias": head.bias.detach().clone(),
        "mean": mean,
        "std": std,
        "y_mean": y_mean.reshape(1),
        "y_std": y_std.reshape(1),
    }
    info = {
        "train_losses": train_losses,
        "val_losses": val_losses,
        "best_epoch": best_epoch,
        "epochs_run": len(train_losses),
        "val_rows": n_val,
        "steps": steps,
    }
    with torch.no_grad():
        out = head(z[val])
        if regression:
            pred = out.squeeze(-1) * y_std + y_mean
            sse = ((pred - y[val]) ** 2).sum().item()
            sst = ((y[val] - y[tr].mean()) ** 2).sum().item()  # vs predicting the train mean
            info["val_r2"] = 1 - sse / sst if sst > 0 else 0.0
            info["val_mae"] = (pred - y[val]).abs().mean().item()
            info["val_mae_of_train_mean"] = (y[val] - y[tr].mean()).abs().mean().item()
        else:
            info["val_accuracy"] = (out.argmax(1) == y[val]).float().mean().item()
            info["majority_rate"] = torch.bincount(y, minlength=n_out).max().item() / n
    return state, info


class ProbeAnswerer(Answerer):
    """Scores labels with the frozen base's features and the trained head (it cannot generate)."""

    can_generate = False

    def __init__(self, model, state: dict, meta: dict, pad_id: int):
        self.model = model
        self.state = state
        self.pooling = meta["pooling"]
        self.layer = meta["layer"]
        self.labels = meta["labels"]
        self.answers = task_type(meta.get("task", "classification")).answers  # labels or number
        self.pad_id = pad_id

    def _outputs(self, prompt_ids, pad_id, batch_size, desc) -> tuple[torch.Tensor, ScoreStats]:
        t0 = time.perf_counter()
        feats = extract_features(
            self.model,
            prompt_ids,
            pad_id=pad_id,
            pooling=self.pooling,
            layer=self.layer,
            batch_size=batch_size,
            desc=desc,
        )
        z = (feats - self.state["mean"]) / self.state["std"]
        out = z @ self.state["weight"].T + self.state["bias"]
        stats = ScoreStats(
            seconds=time.perf_counter() - t0, prompt_tokens=sum(len(p) for p in prompt_ids), n=len(prompt_ids)
        )
        return out, stats

    def score(self, prompt_ids, answer_ids, *, pad_id, batch_size=16, desc=None):
        if self.answers != "labels":
            raise ValueError("this probe predicts numbers (regression); it has no labels to score")
        if len(answer_ids) != len(self.labels):
            raise ValueError(f"the probe was trained on {len(self.labels)} labels, asked to score {len(answer_ids)}")
        logits, stats = self._outputs(prompt_ids, pad_id, batch_size, desc)
        return torch.log_softmax(logits, dim=-1), stats

    def regress(self, tokenizer, prompt_ids, *, fallback, max_new_tokens=8, batch_size=8, desc=None, stop_ids=None):
        if self.answers != "number":
            raise ValueError("this probe classifies; it does not predict numbers")
        out, stats = self._outputs(prompt_ids, self.pad_id, batch_size, desc)
        values = out.squeeze(-1) * self.state["y_std"] + self.state["y_mean"]
        return [float(v) for v in values], stats, 0

    def generate(self, tokenizer, prompt_ids, **kwargs):
        raise ValueError("a linear probe has no decoder head to generate text; use lora, qlora or prompt_tuning")


class LinearProbe(TuningMethod):
    """A linear head on cached frozen features of the prompt (classification or regression); cannot generate."""

    loss_axis = "epoch"
    warm_up_before_calibration = True  # feature extraction has no steps to leave out of the timing

    def training_memory(self, shape, cfg, placement, data: TrainingSet):
        from tunegate.footprint import DTYPE_BYTES, training_memory

        longest = cfg.cap(max((len(p) for p in data.prompt_ids), default=AUTO_MIN_LENGTH))
        return training_memory(
            shape,
            base_bytes=DTYPE_BYTES[placement.dtype],
            quantized=False,
            trainable_params=shape.hidden * max(1, len(data.labels)),
            compute_bytes=DTYPE_BYTES[placement.dtype],
            micro_batch_tokens=cfg.feature_batch_size * longest,
            answer_tokens=0,
            backward_through_model=False,
            checkpointing=False,
            device=placement.device,
        )

    def full_train_tokens(self, data: TrainingSet, cfg) -> int:
        return sum(len(p) for p in data.prompt_ids)  # one forward pass per prompt, features cached

    def scale_to_full(self, stats, *, full_tokens: int, n_rows: int, n_calibration: int) -> tuple[float, float]:
        feat_s = stats.extra["feature_seconds"]
        head_s = max(0.0, stats.seconds - feat_s)
        tok_s = stats.tokens / feat_s if feat_s else float("inf")
        return tok_s, full_tokens / tok_s + head_s * n_rows / n_calibration

    def advice(self, ctx: AdviceContext) -> list[Rule]:
        applies = self.applies_to(ctx.task)
        return [
            Rule(
                10,
                applies and ctx.priority == "speed",
                f"speed matters (priority: speed) and the task is {ctx.task} (labels or scores): a linear head on "
                "frozen features trains in seconds and adds nothing to inference",
            ),
            Rule(50, applies, "compute is very constrained: only a linear head on frozen features fits the budget"),
        ]

    def why_not(self, ctx: AdviceContext) -> str:
        return "priority is quality: a head on frozen features cannot adapt the model's representations"

    def train(self, *, base_path, data: TrainingSet, cfg, out_dir: Path, progress=True) -> TrainedArtifact:
        answers = task_type(data.task).answers
        if answers == "labels" and data.label_index is not None:
            y, n_out = torch.tensor(data.label_index, dtype=torch.long), len(data.labels)
        elif answers == "number" and data.targets is not None:
            y, n_out = torch.tensor(data.targets, dtype=torch.float32), 1
        else:
            raise ValueError(
                "linear_probe applies to classification and regression only (it puts a head on frozen features)"
            )
        from safetensors.torch import save_file

        t0 = time.perf_counter()
        with PeakRSS() as mem:
            start_rss = mem.peak_mb
            feats, hit = cached_features(base_path, data, cfg, desc="probe features" if progress else None)
            feature_seconds = time.perf_counter() - t0
            state, info = fit_head(feats, y, n_out, cfg, progress=progress)
        seconds = time.perf_counter() - t0
        probe_dir = out_dir / PROBE_DIR
        probe_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(probe_dir / "head.safetensors"))
        meta = {
            "task": data.task,
            "labels": data.labels,
            "pooling": cfg.pooling,
            "layer": resolve_layer(base_path, cfg.layer),
            "hidden_size": feats.shape[1],
        }
        (probe_dir / "probe.json").write_text(json.dumps(meta, indent=2))
        self.write_meta(out_dir, {"method": self.name, "method_config": cfg.model_dump(mode="json")})
        hidden = feats.shape[1]
        stats = TrainStats(
            seconds=seconds,
            steps=info["steps"],
            tokens=sum(len(p) for p in data.prompt_ids),
            padded_tokens=0,
            peak_rss_mb=mem.peak_mb,
            losses=info["train_losses"],
            epoch_losses=info["train_losses"],
            start_rss_mb=start_rss,
            extra={
                "feature_seconds": round(feature_seconds, 3),
                "feature_cache_hit": hit,
                **{k: v for k, v in info.items() if k not in ("train_losses", "steps")},
            },
        )
        base_params = parameter_count(base_path)
        return TrainedArtifact(
            artifact_dir=out_dir,
            trainable_params=(hidden + 1) * n_out,
            total_params=base_params + (hidden + 1) * n_out,
            train_stats=stats,
            base_footprint_mb=base_params * 4 / 2**20,  # float32, as loaded
        )

    def load_for_inference(self, *, base_path, artifact_dir):
        from safetensors.torch import load_file

        probe_dir = Path(artifact_dir) / PROBE_DIR
        meta = json.loads((probe_dir / "probe.json").read_text())
        model = load_model(base_path)
        model.eval()
        tokenizer_pad = load_tokenizer(base_path).pad_token_id
        return ProbeAnswerer(model, load_file(str(probe_dir / "head.safetensors")), meta, tokenizer_pad)

    def load_shared(self, *, bases, base_path, artifact_dir, name):
        from safetensors.torch import load_file

        from tunegate.adapters import SharedAnswerer

        probe_dir = Path(artifact_dir) / PROBE_DIR
        meta = json.loads((probe_dir / "probe.json").read_text())
        shared = bases.get(base_path)
        head = load_file(str(probe_dir / "head.safetensors"))
        probe = ProbeAnswerer(shared.model, head, meta, load_tokenizer(base_path).pad_token_id)
        return SharedAnswerer(shared, None, probe)  # the frozen base's features: every adapter off
