"""Prompt tuning (soft prompt) via peft: trainable virtual-token embeddings before the input.

The base model stays frozen and untouched; only ``num_virtual_tokens x hidden`` numbers
train. The soft prompt is saved in standard PEFT format (``PeftModel.from_pretrained``
loads it). For training and generation, :class:`SoftPromptLM` puts the virtual tokens
in front of the input itself, so the shared loop (answer-token loss, micro-batching)
works unchanged; the shared scorer takes them as a prefix of embeddings computed once
(like any shared prompt prefix). Either way the virtual tokens take positions 0..V-1
and the real tokens follow, the same in training and in inference.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tunegate.methods.base import AdviceContext, Rule, TrainedArtifact, TrainingSet
from tunegate.methods.lora.method import ADAPTER_DIR, LoopTrained, train_peft
from tunegate.modeling import load_model
from tunegate.scoring import LMAnswerer
from tunegate.training import answer_only_loss


class SoftPromptLM(torch.nn.Module):
    """A causal LM with a peft soft prompt in front of every input (``forward``, ``prefix``, ``generate``)."""

    def __init__(self, peft_model):
        super().__init__()
        self.peft = peft_model
        self.lm = peft_model.get_base_model()
        self.n_virtual = peft_model.active_peft_config.num_virtual_tokens

    def get_input_embeddings(self):
        return self.lm.get_input_embeddings()

    def prefix(self) -> torch.Tensor:
        """The soft prompt's embeddings [V, hidden], as the scorer takes a shared prefix."""
        return self._prompt(1)[0].detach()

    def _prompt(self, batch: int) -> torch.Tensor:
        emb = self.peft.get_prompt(batch_size=batch)
        return emb.to(self.lm.get_input_embeddings().weight.dtype)

    def _inputs(self, input_ids, attention_mask, position_ids=None):
        b, dev = input_ids.shape[0], input_ids.device
        v = self.n_virtual
        embeds = torch.cat([self._prompt(b).to(dev), self.lm.get_input_embeddings()(input_ids)], dim=1)
        mask = torch.cat([torch.ones((b, v), dtype=attention_mask.dtype, device=dev), attention_mask], dim=1)
        if position_ids is None:  # right-padded rows (training): real tokens at 0..L-1
            position_ids = torch.arange(input_ids.shape[1], device=dev).expand(b, -1)
        pos = torch.cat([torch.arange(v, device=dev).expand(b, -1), position_ids + v], dim=1)
        return embeds, mask, pos

    def forward(self, input_ids, attention_mask, position_ids=None, **kwargs):
        embeds, mask, pos = self._inputs(input_ids, attention_mask, position_ids)
        return self.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, **kwargs)

    @torch.inference_mode()
    def generate(self, input_ids, attention_mask, **kwargs) -> torch.Tensor:
        """Greedy/sampled decoding with the soft prompt; returns input ids + new tokens like ``generate``."""
        embeds, mask, _ = self._inputs(input_ids, attention_mask)
        # generate() derives positions from the mask (cumsum - 1): virtual 0..V-1, then the real tokens
        new = self.lm.generate(inputs_embeds=embeds, attention_mask=mask, **kwargs)
        return torch.cat([input_ids, new], dim=1)


class PromptTuning(LoopTrained):
    """A trainable soft prompt (virtual-token embeddings) before the input of a frozen base."""

    def advice(self, ctx: AdviceContext) -> list[Rule]:
        return [
            Rule(
                40,
                True,
                "compute is very constrained: the larger methods exceed the budget, a soft prompt "
                "of a few virtual tokens fits",
            )
        ]

    def why_not(self, ctx: AdviceContext) -> str:
        return "a better-suited method fits the budget (soft prompts learn less per step)"

    def trainable_estimate(self, shape, cfg) -> int:
        return cfg.num_virtual_tokens * shape.hidden

    def build(self, base_path: str, cfg, init_text: str):
        from peft import PromptTuningConfig as PeftPromptTuningConfig
        from peft import PromptTuningInit, TaskType, get_peft_model

        base = load_model(base_path)
        torch.manual_seed(cfg.seed)
        text = cfg.init_text or init_text
        use_text = cfg.init == "text" and bool(text and text.strip())
        peft_cfg = PeftPromptTuningConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=cfg.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT if use_text else PromptTuningInit.RANDOM,
            prompt_tuning_init_text=text if use_text else None,
            tokenizer_name_or_path=base_path if use_text else None,
        )
        model = get_peft_model(base, peft_cfg)
        model.base_footprint_mb = base.get_memory_footprint() / 2**20
        return model

    def train(self, *, base_path, data: TrainingSet, cfg, out_dir: Path, progress=True) -> TrainedArtifact:
        model = self.build(base_path, cfg, data.instruction)
        soft = SoftPromptLM(model)

        def loss_fn(batch):  # the soft prompt (with its gradient) runs once per micro-batch, as a shared prefix
            return answer_only_loss(soft.lm, batch, prefix_embeds=soft._prompt(1)[0])

        return train_peft(
            self, model, base_path=base_path, data=data, cfg=cfg, out_dir=out_dir, loss_fn=loss_fn, progress=progress
        )

    def load_for_inference(self, *, base_path, artifact_dir):
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_model(base_path), Path(artifact_dir) / ADAPTER_DIR)
        model.eval()
        soft = SoftPromptLM(model).eval()
        return LMAnswerer(soft, lm=soft.lm, prefix_embeds=soft.prefix())
