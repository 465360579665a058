"""LoRA via peft: low-rank adapters in the linear layers of a frozen float32 base."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from tunegate.config import LoraConfig as LoraSettings
from tunegate.methods.base import TrainedArtifact, TrainingSet, TuningMethod, register
from tunegate.modeling import load_model, parameter_count
from tunegate.scoring import LMAnswerer
from tunegate.training import answer_only_loss, train_answer_loss

ADAPTER_DIR = "adapter"


def loop_settings(cfg) -> dict:
    """The shared training loop's keyword arguments from a gradient-trained method's config."""
    return dict(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        micro_batch_size=cfg.micro_batch_size,
        lr=cfg.lr,
        warmup_ratio=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        grad_clip=cfg.grad_clip,
        max_steps=cfg.max_steps,
        seed=cfg.seed,
    )


def train_peft(method: TuningMethod, model, *, base_path, data: TrainingSet, cfg, out_dir: Path, loss_fn, progress) -> TrainedArtifact:
    """The shared loop for a peft model (adapters or a soft prompt): train with per-epoch checkpoints,
    save in standard PEFT format (``PeftModel.from_pretrained`` loads it), record the method's config."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stats = train_answer_loss(
        model,
        data.examples,
        loss_fn=loss_fn,
        pad_id=data.pad_id,
        checkpoint_dir=out_dir / "checkpoints",
        save_checkpoint=lambda m, p: m.save_pretrained(p),
        progress=progress,
        **loop_settings(cfg),
    )
    model.save_pretrained(out_dir / ADAPTER_DIR)
    method.write_meta(out_dir, {"method": method.name, "method_config": cfg.model_dump(mode="json")})
    return TrainedArtifact(
        artifact_dir=out_dir,
        trainable_params=trainable,
        total_params=trainable + parameter_count(base_path),  # numel() undercounts packed 4-bit weights
        train_stats=stats,
        base_footprint_mb=model.base_footprint_mb,
    )


@register("lora", LoraSettings)
class LoRA(TuningMethod):
    def base_model(self, base_path: str, cfg):
        """The frozen base the adapters go into (float32 here; 4-bit in QLoRA)."""
        return load_model(base_path)

    def build(self, base_path: str, cfg):
        from peft import LoraConfig, TaskType, get_peft_model

        base = self.base_model(base_path, cfg)
        torch.manual_seed(cfg.seed)  # adapter init is random (B is zero, A is not)
        peft_cfg = LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=cfg.r,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=cfg.target_modules,
        )
        model = get_peft_model(base, peft_cfg)
        model.base_footprint_mb = base.get_memory_footprint() / 2**20  # numel() undercounts packed 4-bit weights
        return model

    def train(self, *, base_path, data: TrainingSet, cfg, out_dir: Path, progress=True) -> TrainedArtifact:
        model = self.build(base_path, cfg)
        loss_fn = functools.partial(answer_only_loss, model.get_base_model())
        return train_peft(self, model, base_path=base_path, data=data, cfg=cfg, out_dir=out_dir, loss_fn=loss_fn, progress=progress)

    def load_for_inference(self, *, base_path, artifact_dir):
        from peft import PeftModel

        base = load_model(base_path)
        model = PeftModel.from_pretrained(base, Path(artifact_dir) / ADAPTER_DIR)
        # merged weights: inference costs exactly what the base model costs
        merged = model.merge_and_unload()
        merged.eval()
        return LMAnswerer(merged)
