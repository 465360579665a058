"""Memory a training run will need, estimated from the model's config alone (nothing is loaded).

The plan calls this before any calibration, so it can say that a model does not fit the
device in 16-bit while QLoRA does, without loading weights that would not fit. The parts:

- **weights**: every parameter in the base's dtype; linear layers of a 4-bit base take
  ~0.53 bytes per weight (NF4 + double-quantized scales), everything else stays 16-bit;
- **trainable state**: the trainable parameters in float32, their gradients, and AdamW's
  two moments: 16 bytes each;
- **activations** saved for the backward pass, per token of a micro-batch: in each decoder
  layer about 8 hidden-size and 4 MLP-size tensors (norm inputs, q/k/v/o inputs, the
  gated MLP's inputs and products; the attention matrix is not kept with SDPA), in the
  compute dtype; with gradient checkpointing only each layer's input, plus one layer's
  full set while it is recomputed;
- **a shared prefix's keys and values per row**: where a micro-batch's rows run their shared
  first tokens once (``training.answer_only_loss``), each row's attention still reads the
  prefix's keys and values, concatenated to its own (and repeated to every query head where
  the model groups them), kept for the backward pass in every layer;
- **logits** only where the loss is (the answer tokens): vocabulary x answer tokens,
  float32, twice (values and gradient);
- **runtime**: the CUDA context and allocator slack (0.6 GB on a GPU).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tunegate.records import MemoryEstimate

GB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
NF4_BYTES = 0.53  # 4 bits + double-quantized absmax per 64 weights
ADAM_STATE_BYTES = 16  # float32 weight + gradient + two moments
CUDA_RUNTIME_GB = 0.6
MEMORY_HEADROOM = 0.9  # a plan keeps 10% of the device memory free (fragmentation, other processes)


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about a model, read from its config on the meta device."""

    params: int
    named_linear: tuple[tuple[str, int, int], ...]  # (module name's last part, in, out) of the decoder's linear layers
    linear_params: int  # weights of those layers (what 4-bit quantizes)
    hidden: int
    intermediate: int
    layers: int
    vocab: int
    kv_dim: int  # key/value heads x head size: one token's key (or value) in one layer

    def cached_token_elements(self) -> int:
        """Elements one cached prefix token adds per row and layer in training: its key and value, and their
        copies for every query head where heads share them (grouped-query attention)."""
        return 2 * self.kv_dim + (2 * self.hidden if self.kv_dim < self.hidden else 0)

    @property
    def linear(self) -> tuple[tuple[int, int], ...]:
        return tuple((i, o) for _, i, o in self.named_linear)

    def lora_params(self, r: int) -> int:
        """Adapter parameters of rank ``r`` on every decoder linear layer (peft's 'all-linear')."""
        return sum(r * (i + o) for i, o in self.linear)


@functools.lru_cache(maxsize=8)
def model_shape(path: str) -> ModelShape:
    """Read ``path``'s config.json and build the model on the meta device: shapes without weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    linear = tuple(
        (name.rsplit(".", 1)[-1], m.in_features, m.out_features)
        for name, m in model.get_decoder().named_modules()
        if isinstance(m, torch.nn.Linear) and m is not head
    )
    text = config.get_text_config()
    hidden = text.hidden_size
    heads = getattr(text, "num_attention_heads", 1)
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    return ModelShape(
        params=sum(p.numel() for p in model.parameters()),
        named_linear=linear,
        linear_params=sum(i * o for _, i, o in linear),
        hidden=hidden,
        intermediate=getattr(text, "intermediate_size", 4 * hidden),
        layers=text.num_hidden_layers,
        vocab=text.vocab_size,
        kv_dim=kv_heads * head_dim,
    )


def training_memory(
    shape: ModelShape,
    *,
    base_bytes: float,
    quantized: bool,
    trainable_params: int,
    compute_bytes: int,
    micro_batch_tokens: int,
    cached_tokens: int = 0,
    answer_tokens: int,
    backward_through_model: bool,
    checkpointing: bool,
    device: str,
) -> MemoryEstimate:
    """Peak memory of a training step, in parts (see the module docstring)."""
    other = shape.params - shape.linear_params
    weights = shape.linear_params * NF4_BYTES + other * 2 if quantized else shape.params * base_bytes
    state = trainable_params * ADAM_STATE_BYTES
    per_layer = 8 * shape.hidden + 4 * shape.intermediate  # elements saved per token in one decoder layer
    if not backward_through_model:
        acts = micro_batch_tokens * per_layer * compute_bytes  # a forward pass: one layer's worth at a time
    elif checkpointing:
        acts = micro_batch_tokens * (shape.hidden * shape.layers + per_layer) * compute_bytes
    else:
        acts = micro_batch_tokens * per_layer * shape.layers * compute_bytes
        acts += cached_tokens * shape.cached_token_elements() * shape.layers * compute_bytes
    logits = answer_tokens * shape.vocab * 4 * 2
    runtime = CUDA_RUNTIME_GB * GB if device == "cuda" else 0
    total = weights + state + acts + logits + runtime
    return MemoryEstimate(
        weights_gb=round(weights / GB, 3),
        trainable_gb=round(state / GB, 3),
        activations_gb=round((acts + logits) / GB, 3),
        runtime_gb=round(runtime / GB, 3),
        total_gb=round(total / GB, 3),
    )
