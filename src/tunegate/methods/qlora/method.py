"""QLoRA: LoRA adapters on a 4-bit (NF4, double-quantized) base loaded through bitsandbytes.

bitsandbytes is imported lazily (through transformers) only when this method is used,
so everything else works where it is missing. Runs on CPU (bitsandbytes >= 0.49) and
on CUDA when present.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from tunegate import hardware
from tunegate.errors import MethodUnavailableError
from tunegate.methods.base import AdviceContext, Rule
from tunegate.methods.lora.method import ADAPTER_DIR, LoRA
from tunegate.methods.qlora.settings import QLoraSettings
from tunegate.modeling import load_model
from tunegate.scoring import LMAnswerer


def _quantized_base(base_path: str, cfg):
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MethodUnavailableError(
            "method 'qlora' needs bitsandbytes, which is not installed here. Install it with "
            "`pip install bitsandbytes==0.50.2`, or choose method: lora."
        )
    from transformers import BitsAndBytesConfig

    placement = hardware.current()
    compute = placement.dtype if cfg.compute_dtype == "auto" else cfg.compute_dtype
    bnb = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.quant_type,
        bnb_4bit_use_double_quant=cfg.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, compute),
    )
    model = load_model(base_path, quantization_config=bnb, device_map={"": placement.device})
    _keep_cpu_bf16_path_to_fitting_layers(model)
    return model


def _keep_cpu_bf16_path_to_fitting_layers(model) -> None:
    """bitsandbytes' AVX-512 BF16 CPU path repacks each 4-bit weight in blocks of 32 output rows and of the
    quantization block size along the input; a layer narrower than that fails at its first eval forward
    (``RuntimeError: shape '[32, 0]' is invalid``). Such layers take the generic 4-bit path instead."""
    for module in model.modules():
        if not getattr(module, "support_avx512bf16_for_cpu", False):
            continue
        state = getattr(module.weight, "quant_state", None)
        block = getattr(state, "blocksize", 64) or 64
        if module.out_features % 32 or module.in_features % block:
            module.support_avx512bf16_for_cpu = False


class QLoRA(LoRA):
    """LoRA's loop on a 4-bit NF4 base (bitsandbytes); adapters stay unmerged at inference."""

    quantized_base = True

    def advice(self, ctx: AdviceContext) -> list[Rule]:
        return [
            Rule(
                30,
                # the 16-bit route is LoRA's: its estimate decides when there is one (measured, or from the
                # config when it was too large to run), else this method's own training state
                not ctx.base16_fits(LoRA.name if LoRA.name in ctx.estimates else self.name),
                f"the base in 16-bit ({ctx.base16_gb:.2f} GB) plus {self.training_state_text(ctx)} does not fit "
                f"the {ctx.device} memory ({ctx.memory_gb:.1f} GB): QLoRA keeps the base in 4 bits",
            )
        ]

    def why_not(self, ctx: AdviceContext) -> str:
        return "the 16-bit base fits, so 4-bit quantization would cost accuracy and speed for nothing"

    def base_model(self, base_path: str, cfg):
        from peft import prepare_model_for_kbit_training

        base = _quantized_base(base_path, cfg)
        # peft would turn gradient checkpointing on by default (~33% more compute): only as configured
        return prepare_model_for_kbit_training(
            base,
            use_gradient_checkpointing=hardware.current().gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )

    def load_for_inference(self, *, base_path, artifact_dir):
        from peft import PeftModel

        cfg = QLoraSettings(**self.read_meta(Path(artifact_dir))["method_config"])
        model = PeftModel.from_pretrained(_quantized_base(base_path, cfg), Path(artifact_dir) / ADAPTER_DIR)
        model.eval()  # adapters stay unmerged: merging into 4-bit weights would lose precision
        return LMAnswerer(model)

    def load_shared(self, *, bases, base_path, artifact_dir, name):
        return None  # a 4-bit base of its own: not the full-precision base others share
