"""`tunegate export` (tunegate/export.py): each format loaded back as another engine would and re-scored against
the version's metric; refusals say why; nothing half-written is left."""

import json

import pytest

from tests.conftest import make_config, pipeline_run
from tunegate.cli import main
from tunegate.config import load_config
from tunegate.errors import TunegateError
from tunegate.export import export
from tunegate.registry import Registry


@pytest.fixture(scope="module")
def registered(tmp_path_factory, tiny_model_dir):
    """Versions of the tiny model: LoRA (v1, trained enough to differ from its base), linear probe (v2), prompt
    tuning (v3)."""
    from tests.conftest import write_toy_data

    tmp = tmp_path_factory.mktemp("export")
    cfg = load_config(
        make_config(
            tmp,
            tiny_model_dir,
            write_toy_data(tmp),
            method={"max_steps": 6, "lr": 0.01},
            gate={"min_gain": -1.0, "mcnemar": False, "bootstrap_samples": 100},
            baselines={"few_shot": {"enabled": False}, "retrieved_few_shot": {"enabled": False}, "calibrated": False},
        )
    )
    pipeline_run(cfg)  # v1: LoRA
    gate = {"min_gain": -1.0, "mcnemar": False, "bootstrap_samples": 100}
    fast = {"few_shot": {"enabled": False}, "retrieved_few_shot": {"enabled": False}, "calibrated": False}
    for method in ({"name": "linear_probe", "max_length": 64, "epochs": 5},  # v2
                   {"name": "prompt_tuning", "num_virtual_tokens": 2, "max_steps": 3, "lr": 0.05}):  # v3 # fmt: skip
        pipeline_run(load_config(make_config(tmp, tiny_model_dir, write_toy_data(tmp), method=method, gate=gate,
                                             baselines=fast)))  # fmt: skip
    return Registry(cfg.registry.path)


def test_peft_and_merged_exports_load_in_plain_transformers_and_reproduce_the_version(registered, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for fmt in ("peft", "merged"):
        out = tmp_path / fmt
        result = export(registered.root, "toy@1", fmt, out)
        assert result.rescore["reproduced"] and result.rescore["agreement"] == 1.0, result.rescore
        assert "tunegate.json" in result.files and "README.md" in result.files and "export.json" in result.files
        assert any(f.startswith("tokenizer") for f in result.files)
        assert not list(tmp_path.glob(".*partial*"))  # the build folder is gone
    assert (tmp_path / "peft" / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not any("lora" in n for n, _ in merged.named_parameters())
    tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert tok.chat_template  # the chat template travels with it
    base_spec = json.loads((tmp_path / "peft" / "tunegate.json").read_text())["base_model"]["spec"]
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_spec), tmp_path / "peft" / "adapter")


def test_export_refuses_what_it_cannot_write_and_never_leaves_half_a_folder(registered, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    with pytest.raises(TunegateError, match="exists; choose another folder or add --force"):
        export(registered.root, "toy@1", "merged", tmp_path / "taken")
    with pytest.raises(TunegateError, match="needs the base model's own GGUF file"):
        export(registered.root, "toy@1", "gguf", tmp_path / "g")  # the tiny model is a folder, not a GGUF
    assert not (tmp_path / "g").exists() and not list(tmp_path.glob(".*partial*"))
    assert main(["export", "toy@1", "--format", "peft", "--out", str(tmp_path / "cli"), "--registry",
                 str(registered.root)]) == 0  # fmt: skip
    assert "re-scored from the peft export" in capsys.readouterr().out
    assert main(["export", "toy@9", "--format", "peft", "--out", str(tmp_path / "x"), "--registry",
                 str(registered.root)]) == 1  # fmt: skip


def test_the_gguf_writer_keeps_llama_cpp_layout_so_transformers_reads_back_the_same_model(tiny_model_dir, tmp_path):
    """The tiny llama written through gguf_export (from a source GGUF of its shape), read back by transformers' GGUF
    loader: the same logits (the q/k row order and the tensor names right; the real models' exports, tokenizer
    included, are re-scored by `tunegate export` itself)."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM

    from tunegate.gguf_export import write_gguf

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    cfg = model.config
    source = gguf.GGUFWriter(str(tmp_path / "source.gguf"), "llama")  # the model part only: no tokenizer
    source.add_context_length(cfg.max_position_embeddings)
    source.add_embedding_length(cfg.hidden_size)
    source.add_block_count(cfg.num_hidden_layers)
    source.add_feed_forward_length(cfg.intermediate_size)
    source.add_head_count(cfg.num_attention_heads)
    source.add_head_count_kv(cfg.num_key_value_heads)
    source.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    source.add_rope_freq_base(cfg.rope_parameters["rope_theta"] if getattr(cfg, "rope_parameters", None) else 10000.0)
    source.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    source.add_vocab_size(cfg.vocab_size)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    for hf_name, t in model.state_dict().items():
        if (name := names.get_name(hf_name, try_suffixes=(".weight", ".bias"))) is not None:
            source.add_tensor(name, torch.zeros_like(t).numpy())
    source.write_header_to_file()
    source.write_kv_data_to_file()
    source.write_tensors_to_file()
    source.close()
    (tmp_path / "out").mkdir()
    write_gguf(model, tmp_path / "source.gguf", tmp_path / "out" / "model.gguf")
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "out", gguf_file="model.gguf", dtype=torch.float32).eval()
    ids = torch.tensor([[1, 17, 230, 5000, 42, 7, 99]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, back(ids).logits, atol=1e-4)


def test_the_probe_and_prompt_tuning_export_as_peft_and_reproduce(registered, tmp_path):
    """The probe's head and the soft prompt: exported, loaded back by the method's own loader from the exported
    folder, every eval row answered as the version does."""
    for ref, part in (("toy@2", "probe/head.safetensors"), ("toy@3", "adapter/adapter_model.safetensors")):
        assert registered.resolve(ref).meta["method"] in ("linear_probe", "prompt_tuning")
        result = export(registered.root, ref, "peft", tmp_path / ref)
        assert result.rescore["reproduced"] and result.rescore["agreement"] == 1.0, (ref, result.rescore)
        assert (tmp_path / ref / part).is_file() and "tunegate.json" in result.files
    for ref in ("toy@2", "toy@3"):
        with pytest.raises(TunegateError, match="use --format peft"):
            export(registered.root, ref, "merged", tmp_path / f"m{ref}")


def test_lora_probe_and_prompt_tuning_versions_served_on_one_base_answer_as_their_own_copies(registered):
    """What `tunegate serve --model toy@1 --model toy@2 --model toy@3` loads: LoRA and the probe on one shared copy of
    the base (the probe reads it with the LoRA adapter off), prompt tuning on its own; queued requests of the three
    answered together equal each version loaded alone."""
    from tunegate.adapters import SharedBases
    from tunegate.inference import load_version, predict, predict_together

    texts = ["a wonderful film", "dull and far too long", "I loved every minute", "the plot made no sense"]
    alone = {ref: predict(load_version(registered.resolve(ref)), texts) for ref in ("toy@1", "toy@2", "toy@3")}
    bases = SharedBases()
    shared = {ref: load_version(registered.resolve(ref), bases=bases, adapter_name=ref) for ref in alone}
    (memory,) = bases.memory().values()
    assert memory["adapters"] == ["toy@1"]  # one base for LoRA and the probe; prompt tuning has its own copy
    assert shared["toy@1"].answerer.shared is shared["toy@2"].answerer.shared
    together = predict_together([(shared[ref], texts) for ref in alone])
    for (ref, want), got in zip(alone.items(), together):
        assert [o["label"] for o in got] == [o["label"] for o in want], ref
        for g, w in zip(got, want):
            assert g["probabilities"] == pytest.approx(w["probabilities"], abs=1e-4), ref
    # the versions differ (else equal answers prove nothing)
    assert alone["toy@1"][0]["probabilities"] != pytest.approx(alone["toy@2"][0]["probabilities"], abs=1e-3)
