"""A merged model written as GGUF with the ``gguf`` package (llama.cpp's own Python library), not by hand: the
source GGUF's key-value metadata is copied (architecture, hyperparameters, tokenizer, chat template), its tensors
are replaced by the merged weights under the same names, in float32.

Hugging Face and GGUF lay two things out differently, as llama.cpp's ``convert_hf_to_gguf.py`` knows and
transformers' GGUF loader undoes: Llama's q/k projection rows are interleaved per head (``_permute``), and Gemma's
RMSNorm weights are stored with the +1 the HF model adds at run time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SKIP_KEYS = ("general.architecture", "general.file_type", "general.quantization_version")


def _permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute`` (the inverse of transformers' ``_reverse_permute_weights``)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _value(field):
    """A reader field's value as the writer takes it: (value, type, sub-type)."""
    import gguf

    vtype = field.types[0]
    if vtype == gguf.GGUFValueType.ARRAY:
        return list(field.contents()), vtype, field.types[-1]
    return field.contents(), vtype, None


def write_gguf(model, source: Path, target: Path) -> None:
    """Write ``model`` (a merged transformers causal LM) as ``target``, shaped like ``source`` (its base's GGUF)."""
    import gguf

    reader = gguf.GGUFReader(str(source))
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(target), arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in SKIP_KEYS:
            continue
        value, vtype, sub = _value(field)
        writer.add_key_value(name, value, vtype, sub_type=sub)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    cfg = model.config
    arch_id = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch]
    names = gguf.get_tensor_name_map(arch_id, cfg.num_hidden_layers)
    tensors: dict[str, np.ndarray] = {}
    for hf_name, t in model.state_dict().items():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            continue  # buffers (rotary tables), or a head tied to the embeddings
        w = t.detach().float().cpu().numpy()
        if arch == "llama" and name.endswith("attn_q.weight"):
            w = _permute(w, cfg.num_attention_heads, cfg.num_attention_heads)
        elif arch == "llama" and name.endswith("attn_k.weight"):
            w = _permute(w, cfg.num_attention_heads, cfg.num_key_value_heads)
        elif arch.startswith("gemma") and name.endswith("norm.weight"):
            w = w + 1.0
        tensors[name] = np.ascontiguousarray(w, dtype=np.float32)
    missing = [t.name for t in reader.tensors if t.name not in tensors]
    if missing:
        raise ValueError(f"no merged weight for GGUF tensors {missing[:5]} (architecture {arch})")
    for t in reader.tensors:  # the source's order
        writer.add_tensor(t.name, tensors[t.name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
