"""Several registered versions on one copy of a base model's weights (``tunegate serve --model A --model B ...``).

A LoRA version is a named peft adapter on the one peft model that wraps the shared base; a prompt version and
the linear probe read the same base with every adapter off. Each call runs with its version's adapter active
(:meth:`SharedBase.using`). Rows of different versions of one base can share a forward
(:meth:`SharedBase.rows`: peft applies each row's own adapter, lora's mixed-batch forward), which
:func:`score_mixed` does for classification. One thread runs the models (the serving queue): switching the
active adapter between calls is safe there and nowhere else.

Unmerged adapters cost a little per token over merged weights (two small matmuls per adapted layer); a version
answers as it was judged up to float rounding (the registry's reproduce tolerance).
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

import torch

from tunegate.scoring import Answerer, LMAnswerer, ScoreStats, score_answers

BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


class SharedBase:
    """One base model in memory and the LoRA adapters loaded onto it by name."""

    def __init__(self, path: str):
        from tunegate.modeling import load_model

        self.path = path
        self.model = load_model(path)
        self.peft = None  # the peft model around ``model``, from the first adapter on
        self.adapters: list[str] = []

    def add_lora(self, name: str, adapter_dir: Path) -> None:
        """Load a LoRA adapter under ``name`` (the base's layers get adapter slots in place: ``model`` is shared)."""
        from peft import PeftModel

        if name in self.adapters:
            return
        with warnings.catch_warnings():  # peft's own use of a deprecated transformers name
            warnings.filterwarnings("ignore", category=FutureWarning)
            if self.peft is None:
                self.peft = PeftModel.from_pretrained(self.model, str(adapter_dir), adapter_name=name)
            else:
                self.peft.load_adapter(str(adapter_dir), adapter_name=name)
        self.peft.eval()
        self.adapters.append(name)

    def drop(self, name: str) -> None:
        """Unload an adapter no version serves any more (the last one stays: peft keeps an active adapter)."""
        if name in self.adapters and len(self.adapters) > 1:
            self.peft.delete_adapter(name)
            self.adapters.remove(name)

    @contextlib.contextmanager
    def using(self, adapter: str | None):
        """Calls inside run with ``adapter`` (None: the base alone)."""
        if self.peft is None:
            yield
        elif adapter is None:
            with self.peft.disable_adapter():
                yield
        else:
            self.peft.set_adapter(adapter, inference_mode=True)
            yield

    def rows(self, adapters: list[str | None]):
        """A forward inside runs row i with ``adapters[i]`` (None: no adapter). Rows of one adapter take the plain
        path (:meth:`using`): peft's per-row hooks cost ~20 ms to set up and a gather per adapted layer."""
        if self.peft is None:
            return contextlib.nullcontext()
        if len(set(adapters)) == 1:
            return self.using(adapters[0])
        return self.peft.base_model._enable_peft_forward_hooks(adapter_names=[a or BASE for a in adapters])

    def adapter_bytes(self) -> int:
        """Memory of the loaded adapters' weights."""
        if self.peft is None:
            return 0
        return sum(p.numel() * p.element_size() for n, p in self.peft.named_parameters() if "lora_" in n)


class SharedAnswerer(Answerer):
    """A version's answerer on a shared base: every call runs with its adapter (None: the base alone)."""

    def __init__(self, shared: SharedBase, adapter: str | None, inner: Answerer):
        self.shared, self.adapter, self.inner = shared, adapter, inner
        self.can_generate = inner.can_generate

    @property
    def mixable(self) -> bool:
        """Its scoring can share a forward with other versions of the same base (a plain LM on the base)."""
        inner = self.inner
        return isinstance(inner, LMAnswerer) and inner.prefix_embeds is None and inner.lm is self.shared.model

    def score(self, prompt_ids, answer_ids, *, pad_id, batch_size=16, desc=None):
        with self.shared.using(self.adapter):
            return self.inner.score(prompt_ids, answer_ids, pad_id=pad_id, batch_size=batch_size, desc=desc)

    def generate(self, tokenizer, prompt_ids, **kwargs):
        with self.shared.using(self.adapter):
            return self.inner.generate(tokenizer, prompt_ids, **kwargs)

    def regress(self, tokenizer, prompt_ids, **kwargs):
        with self.shared.using(self.adapter):
            return self.inner.regress(tokenizer, prompt_ids, **kwargs)


class SharedBases:
    """The base models a server holds, one per base path."""

    def __init__(self):
        self.bases: dict[str, SharedBase] = {}

    def get(self, path: str) -> SharedBase:
        if path not in self.bases:
            self.bases[path] = SharedBase(path)
        return self.bases[path]

    def lm(self, path: str, adapter: str | None = None) -> SharedAnswerer:
        """The base's language model with ``adapter`` (None: the base alone, e.g. a prompt version)."""
        shared = self.get(path)
        return SharedAnswerer(shared, adapter, LMAnswerer(shared.model))

    def memory(self) -> dict[str, Any]:
        """What the held bases and adapters weigh (parameters only)."""
        out = {}
        for path, b in self.bases.items():
            base = sum(p.numel() * p.element_size() for n, p in b.model.named_parameters() if "lora_" not in n)
            out[path] = {"base_bytes": base, "adapter_bytes": b.adapter_bytes(), "adapters": list(b.adapters)}
        return out


def score_mixed(
    answerers: list[SharedAnswerer],
    prompt_ids: list[list[int]],
    owner: list[int],
    answer_ids,
    *,
    pad_id: int,
    batch_size: int,
) -> tuple[torch.Tensor, ScoreStats]:
    """Answer log-likelihoods of rows that belong to different versions of one base in shared forwards: row i is
    answered by ``answerers[owner[i]]`` (every one :attr:`SharedAnswerer.mixable`, same base, same answers)."""
    shared = answerers[0].shared
    if any(a.shared is not shared or not a.mixable for a in answerers):
        raise ValueError("score_mixed: every answerer must be a plain LM on the same shared base")
    return score_answers(
        shared.model,
        prompt_ids,
        answer_ids,
        pad_id=pad_id,
        batch_size=batch_size,
        row_groups=[answerers[o].adapter for o in owner],
        group_context=shared.rows,
    )
