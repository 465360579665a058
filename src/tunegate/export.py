"""``tunegate export NAME@V --format peft|merged|gguf --out DIR``: a registered version in the formats other engines
load, each loaded back the way those engines would and re-scored on the version's eval rows; it must reproduce
the version's metric within ``registry.reproduce_tolerance`` (and its per-row agreement), or nothing is written.

* ``peft``: the adapter as peft saves it (``adapter/``: LoRA, QLoRA, or prompt tuning's soft prompt), the base
  model's tokenizer and chat template, ``tunegate.json`` (the prompt it was judged with) and a README with the
  loader. The linear probe exports its head (``probe/head.safetensors``, ``probe.json``) with a loader snippet.
* ``merged``: LoRA merged into the base weights, saved by transformers (safetensors, config, tokenizer, chat
  template): what plain transformers and vLLM load.
* ``gguf``: the merged weights in one GGUF file (float32) written with the ``gguf`` package: the base model's own
  GGUF metadata (architecture, tokenizer, chat template) and its tensor names and layout (llama.cpp's q/k row
  order, Gemma's norm offset), re-read through transformers' GGUF loader for the re-score.

The export is built in a hidden folder beside ``--out`` and renamed into place only once it reproduced.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate.errors import TunegateError
from tunegate.methods import TuningMethod, get_method

FORMATS = ("peft", "merged", "gguf")
ADAPTER_DIR = "adapter"
LM_METHODS = ("lora", "qlora")


@dataclass
class Exported:
    out: Path
    format: str
    files: list[str]
    rescore: dict[str, Any]


def _refuse(fmt: str, method: str, ref: str) -> None:
    if method == "prompt":
        raise TunegateError(
            f"{ref} is a prompt version (an instruction and demonstrations, no weights): there is nothing to export "
            "as peft, merged or gguf; its artifact/tunegate.json in the registry is the prompt to use"
        )
    if fmt == "peft" or method in LM_METHODS:
        return
    why = {
        "prompt_tuning": "a soft prompt is not part of the weights (it is prepended to every input)",
        "linear_probe": "a probe is a head over the base model's features, not a language model",
    }.get(method, f"{method} has no mergeable weights")
    raise TunegateError(f"{ref} is a {method} version: it cannot be exported as {fmt} ({why}); use --format peft")


def export(registry_root: str | Path, ref: str, fmt: str, out: str | Path, *, force: bool = False) -> Exported:
    """Export ``ref`` as ``fmt`` into ``out`` (refused when it does not reproduce the version's metric)."""
    from tunegate import promotion
    from tunegate.modeling import resolve_model
    from tunegate.registry import Registry

    if fmt not in FORMATS:
        raise TunegateError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    reg = Registry(registry_root)
    info = reg.resolve(ref)
    name = f"{info.name}@v{info.version}"
    reg.require_intact(info.name, info.version, doing="exporting")
    artifact = info.path / "artifact"
    meta = TuningMethod.read_meta(artifact)
    _refuse(fmt, meta["method"], name)
    out = Path(out)
    if out.exists() and not force:
        raise TunegateError(f"--out {out} exists; choose another folder or add --force to replace it")
    base = resolve_model(meta["base_model"]["spec"], config_dir=info.path)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        WRITERS[fmt](tmp, artifact, meta, base)
        result = promotion.rescore(
            reg,
            info.name,
            info.version,
            load=lambda config_dir: LOADERS[fmt](tmp, artifact, meta, info, base),
            what=f"the {fmt} export",
        )
        if not result.reproduced:
            raise TunegateError(f"the {fmt} export of {name} does not reproduce it: {result.note}; nothing written")
        record = {"version": name, "format": fmt, "method": meta["method"], "base_model": meta["base_model"]}
        record["rescore"] = result.model_dump(mode="json")
        (tmp / "export.json").write_text(json.dumps(record, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return Exported(out=out, format=fmt, files=files, rescore=record["rescore"])


# ---- writers: what goes into the folder


def _tokenizer_and_prompt(tmp: Path, artifact: Path, base) -> None:
    from tunegate.modeling import load_tokenizer

    load_tokenizer(base.path).save_pretrained(str(tmp))  # tokenizer files and the chat template
    shutil.copy(artifact / "tunegate.json", tmp / "tunegate.json")


def _write_peft(tmp: Path, artifact: Path, meta: dict, base) -> None:
    for part in (ADAPTER_DIR, "probe"):
        if (artifact / part).is_dir():
            shutil.copytree(artifact / part, tmp / part)
    _tokenizer_and_prompt(tmp, artifact, base)
    (tmp / "README.md").write_text(_readme("peft", meta))


def _merged_model(artifact: Path, meta: dict, base):
    from peft import PeftModel

    from tunegate.modeling import load_model

    model = PeftModel.from_pretrained(load_model(base.path), str(artifact / ADAPTER_DIR))
    return model.merge_and_unload().eval()


def _write_merged(tmp: Path, artifact: Path, meta: dict, base) -> None:
    _merged_model(artifact, meta, base).save_pretrained(str(tmp), safe_serialization=True)
    _tokenizer_and_prompt(tmp, artifact, base)
    (tmp / "README.md").write_text(_readme("merged", meta))


def _write_gguf(tmp: Path, artifact: Path, meta: dict, base) -> None:
    from tunegate.gguf_export import write_gguf

    source = _source_gguf(meta)
    write_gguf(_merged_model(artifact, meta, base), source, tmp / gguf_name(meta))
    shutil.copy(artifact / "tunegate.json", tmp / "tunegate.json")
    (tmp / "README.md").write_text(_readme("gguf", meta))


def gguf_name(meta: dict) -> str:
    return "model-f32.gguf"


def _source_gguf(meta: dict) -> Path:
    """The GGUF file the base model came from (its metadata and tensor layout are the export's)."""
    from tunegate.modeling import BUILTIN

    spec = meta["base_model"]["spec"]
    if spec in BUILTIN:
        return BUILTIN[spec].locate()[0]
    if str(spec).lower().endswith(".gguf") and Path(spec).is_file():
        return Path(spec)
    raise TunegateError(
        f"--format gguf needs the base model's own GGUF file (its tokenizer and layout are copied); base {spec!r} "
        "is not one: export --format merged and convert it with llama.cpp's convert_hf_to_gguf.py"
    )


WRITERS = {"peft": _write_peft, "merged": _write_merged, "gguf": _write_gguf}


# ---- loaders: the export read back as another engine would, for the re-score


def _load_peft(tmp: Path, artifact: Path, meta: dict, info, base):
    from transformers import AutoTokenizer

    from tunegate.inference import Predictor
    from tunegate.scoring import LMAnswerer

    tokenizer = AutoTokenizer.from_pretrained(str(tmp))
    if meta["method"] == "lora":  # plain transformers + peft, unmerged
        from peft import PeftModel

        from tunegate.modeling import load_model

        answerer = LMAnswerer(PeftModel.from_pretrained(load_model(base.path), str(tmp / ADAPTER_DIR)).eval())
    else:  # QLoRA's 4-bit base, the soft prompt, the probe: the method's own loader, from the exported folder
        answerer = get_method(meta["method"]).load_for_inference(base_path=base.path, artifact_dir=tmp)
    return Predictor(version=info, answerer=answerer, tokenizer=tokenizer, meta=meta)


def _load_merged(tmp: Path, artifact: Path, meta: dict, info, base):
    from transformers import AutoTokenizer

    from tunegate.inference import Predictor
    from tunegate.modeling import load_model
    from tunegate.scoring import LMAnswerer

    answerer = LMAnswerer(load_model(str(tmp)))
    return Predictor(version=info, answerer=answerer, tokenizer=AutoTokenizer.from_pretrained(str(tmp)), meta=meta)


def _load_gguf(tmp: Path, artifact: Path, meta: dict, info, base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunegate.inference import Predictor
    from tunegate.scoring import LMAnswerer

    name = gguf_name(meta)
    model = AutoModelForCausalLM.from_pretrained(str(tmp), gguf_file=name, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tmp), gguf_file=name)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Predictor(version=info, answerer=LMAnswerer(model), tokenizer=tokenizer, meta=meta)


LOADERS = {"peft": _load_peft, "merged": _load_merged, "gguf": _load_gguf}


def _readme(fmt: str, meta: dict) -> str:
    base = meta["base_model"]
    prompt = meta.get("prompt", {})
    head = (
        f"# {meta.get('name', 'tunegate export')} ({fmt})\n\n"
        f"Method {meta['method']} on base model {base.get('model_id') or base.get('spec')}. It was judged with the "
        f"prompt in `tunegate.json` (instruction: {prompt.get('instruction')!r}); answer with the same prompt (the "
        "tokenizer's chat template, that instruction, the input) to get what the gate measured.\n\n"
    )
    if fmt == "merged":
        code = (
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            "model = AutoModelForCausalLM.from_pretrained('THIS_FOLDER')\n"
            "tokenizer = AutoTokenizer.from_pretrained('THIS_FOLDER')\n"
            "# vLLM: vllm serve THIS_FOLDER\n"
        )
    elif fmt == "gguf":
        code = (
            "# llama.cpp: llama-cli -m THIS_FOLDER/model-f32.gguf (quantize with llama-quantize if you like)\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            "model = AutoModelForCausalLM.from_pretrained('THIS_FOLDER', gguf_file='model-f32.gguf')\n"
            "tokenizer = AutoTokenizer.from_pretrained('THIS_FOLDER', gguf_file='model-f32.gguf')\n"
        )
    elif meta["method"] == "linear_probe":
        code = _PROBE_SNIPPET
    else:
        code = (
            "from peft import PeftModel\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f"base = AutoModelForCausalLM.from_pretrained('BASE_MODEL_FOLDER')  # {base.get('spec')}\n"
            "model = PeftModel.from_pretrained(base, 'THIS_FOLDER/adapter')\n"
            "tokenizer = AutoTokenizer.from_pretrained('THIS_FOLDER')\n"
        )
    return head + "```python\n" + code + "```\n"


_PROBE_SNIPPET = """import json, torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained('BASE_MODEL_FOLDER')
tokenizer = AutoTokenizer.from_pretrained('THIS_FOLDER')
probe, head = json.load(open('THIS_FOLDER/probe/probe.json')), load_file('THIS_FOLDER/probe/head.safetensors')
def predict(prompt_ids):  # the prompt as tunegate.json's prompt renders it
    with torch.no_grad():
        h = model(torch.tensor([prompt_ids]), output_hidden_states=True).hidden_states[probe['layer']]
    feats = h[0, -1] if probe['pooling'] == 'last' else h[0].mean(0)
    z = (feats - head['mean']) / head['std']
    return probe['labels'][int((z @ head['weight'].T + head['bias']).argmax())]
"""
