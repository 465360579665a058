"""LoRA via peft: low-rank adapters in the linear layers of a frozen float32 base."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch

from tunegate.footprint import DTYPE_BYTES, training_memory
from tunegate.methods.base import (
    CALIBRATION_STEPS,
    CHECKPOINTS,
    AdviceContext,
    MicroBatchOption,
    Rule,
    TrainedArtifact,
    TrainingSet,
    TuningMethod,
)
from tunegate.methods.settings import AUTO_MIN_LENGTH
from tunegate.modeling import load_model, parameter_count
from tunegate.scoring import LMAnswerer, shared_prompt_prefix
from tunegate.training import answer_only_loss, micro_batch_cached_tokens, micro_batch_tokens
from tunegate.training_run import train_answer_loss

ADAPTER_DIR = "adapter"


class LoopTrained(TuningMethod):
    """A method trained by the shared answer-token loop: how the plan calibrates and scales it."""

    data_parallel = True  # the loop splits each batch over processes (hardware.processes)

    def calibration(self, data: TrainingSet, cfg):
        rows = min(len(data), CALIBRATION_STEPS * cfg.batch_size)
        timing = {"max_steps": CALIBRATION_STEPS, "epochs": 1, "warmup_ratio": 0.0, "checkpoint_every": 0}
        return rows, cfg.model_copy(update=timing)  # a throw-away run: no checkpoints

    quantized_base = False

    def trainable_estimate(self, shape, cfg) -> int:
        raise NotImplementedError

    def training_memory(self, shape, cfg, placement, data: TrainingSet):
        micro = cfg.micro
        longest = cfg.cap(max((len(p) + len(a) for p, a in data.examples), default=AUTO_MIN_LENGTH))
        longest_answer = max((len(a) for _, a in data.examples), default=1)
        shared = shared_prompt_prefix(data.prompt_ids)
        return training_memory(
            shape,
            base_bytes=DTYPE_BYTES[placement.dtype],
            quantized=self.quantized_base,
            trainable_params=self.trainable_estimate(shape, cfg),
            compute_bytes=DTYPE_BYTES[placement.dtype],
            micro_batch_tokens=micro_batch_tokens(micro, longest, shared, placement.gradient_checkpointing),
            cached_tokens=micro_batch_cached_tokens(micro, shared, placement.gradient_checkpointing),
            answer_tokens=micro * longest_answer,
            backward_through_model=True,
            checkpointing=placement.gradient_checkpointing,
            device=placement.device,
        )

    def micro_batch_options(self, shape, cfg, placement, data: TrainingSet) -> list[MicroBatchOption]:
        """The configured micro-batch, then doubling up to batch_size: the same update, the rows' shared first
        tokens computed once per micro-batch (``micro_batch_tokens``) at a mean row's length."""
        micro = cfg.micro
        if not len(data):
            return []
        shared = shared_prompt_prefix(data.prompt_ids)
        mean_row = round(sum(len(p) + len(a) for p, a in data.examples) / len(data))
        sizes = [micro]
        while sizes[-1] < cfg.batch_size:
            sizes.append(min(2 * sizes[-1], cfg.batch_size))
        out = []
        for m in sizes:
            mem = self.training_memory(shape, cfg.model_copy(update={"micro_batch_size": m}), placement, data)
            tokens = len(data) / m * micro_batch_tokens(m, mean_row, shared, placement.gradient_checkpointing)
            out.append(MicroBatchOption(m, tokens, mem.total_gb))
        return out

    def full_train_tokens(self, data: TrainingSet, cfg) -> int:
        """Prompt + answer tokens over all epochs, up to max_steps."""
        per_epoch = sum(len(p) + len(a) for p, a in data.examples)
        steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
        total_steps = cfg.epochs * steps_per_epoch
        if cfg.max_steps is not None:
            total_steps = min(total_steps, cfg.max_steps)
        return round(per_epoch * total_steps / steps_per_epoch)


def train_peft(
    method: TuningMethod, model, *, base_path, data: TrainingSet, cfg, out_dir: Path, loss_fn, progress
) -> TrainedArtifact:
    """The shared loop for a peft model (adapters or a soft prompt): train with resumable checkpoints,
    save in standard PEFT format (``PeftModel.from_pretrained`` loads it), record the method's config."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    adapter = getattr(model, "active_peft_config", None)
    scored = adapter is not None and not adapter.is_prompt_learning  # a soft prompt is not in the decoder it scores
    stats = train_answer_loss(
        model,
        data.examples,
        loss_fn=loss_fn,
        pad_id=data.pad_id,
        checkpoint_dir=out_dir / CHECKPOINTS if cfg.checkpoint_every != 0 else None,
        run_key=f"{method.name}|{data.fingerprint}|{cfg.model_dump_json()}",
        selection=data.selection,
        selection_labels=data.selection_labels if scored else None,  # the selection accuracy at each epoch end
        progress=progress,
        **cfg.loop_settings(),
    )
    from accelerate import PartialState

    if PartialState().is_main_process:  # several processes (hardware.processes): only rank 0 writes
        model.save_pretrained(out_dir / ADAPTER_DIR)
        method.write_meta(out_dir, {"method": method.name, "method_config": cfg.model_dump(mode="json")})
    return TrainedArtifact(
        artifact_dir=out_dir,
        trainable_params=trainable,
        total_params=trainable + parameter_count(base_path),  # numel() undercounts packed 4-bit weights
        train_stats=stats,
        base_footprint_mb=model.base_footprint_mb,
    )


class LoRA(LoopTrained):
    """Low-rank adapters in the linear layers of a frozen float32 base, merged into it for inference."""

    def advice(self, ctx: AdviceContext) -> list[Rule]:
        state = self.training_state_text(ctx)
        return [
            Rule(
                20,
                ctx.base16_fits(self.name),
                f"the base in 16-bit ({ctx.base16_gb:.2f} GB) plus {state} fits the {ctx.device} memory "
                f"({ctx.memory_gb:.1f} GB): LoRA is the general-purpose choice",
            )
        ]

    def trainable_estimate(self, shape, cfg) -> int:
        share = len(cfg.layer_indices(shape.layers) or range(shape.layers)) / shape.layers  # method.layers
        if cfg.target_modules == "all-linear":
            return round(shape.lora_params(cfg.r) * share)
        targets = set(cfg.target_modules)
        return round(sum(cfg.r * (i + o) for name, i, o in shape.named_linear if name in targets) * share)

    def training_state_text(self, ctx: AdviceContext) -> str:
        return f"adapters, optimizer state and activations ({ctx.training_state_gb(self.name):.2f} GB measured)"

    def base_model(self, base_path: str, cfg):
        """The frozen base the adapters go into (float32 here; 4-bit in QLoRA)."""
        return load_model(base_path)

    def build(self, base_path: str, cfg):
        from peft import LoraConfig, TaskType, get_peft_model

        base = self.base_model(base_path, cfg)
        torch.manual_seed(cfg.seed)  # adapter init is random (B is zero, A is not)
        blocks = cfg.layer_indices(base.config.get_text_config().num_hidden_layers)
        targets = cfg.target_modules
        if blocks is not None and isinstance(targets, str):  # peft takes a block list only with named modules
            linear = (n for n, m in base.get_decoder().named_modules() if isinstance(m, torch.nn.Linear))
            targets = sorted({n.rsplit(".", 1)[-1] for n in linear})
        peft_cfg = LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=cfg.r,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=targets,
            layers_to_transform=blocks,  # method.layers: None adapts every block
        )
        model = get_peft_model(base, peft_cfg)
        model.base_footprint_mb = base.get_memory_footprint() / 2**20  # numel() undercounts packed 4-bit weights
        return model

    def train(self, *, base_path, data: TrainingSet, cfg, out_dir: Path, progress=True) -> TrainedArtifact:
        model = self.build(base_path, cfg)
        loss_fn = functools.partial(answer_only_loss, model.get_base_model())
        return train_peft(
            self, model, base_path=base_path, data=data, cfg=cfg, out_dir=out_dir, loss_fn=loss_fn, progress=progress
        )

    def load_for_inference(self, *, base_path, artifact_dir):
        from peft import PeftModel

        base = load_model(base_path)
        model = PeftModel.from_pretrained(base, Path(artifact_dir) / ADAPTER_DIR)
        # merged weights: inference costs exactly what the base model costs
        merged = model.merge_and_unload()
        merged.eval()
        return LMAnswerer(merged)

    def load_shared(self, *, bases, base_path, artifact_dir, name):
        bases.get(base_path).add_lora(name, Path(artifact_dir) / ADAPTER_DIR)  # unmerged: applied per row
        return bases.lm(base_path, name)
