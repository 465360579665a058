"""Several versions on one base model's weights (tunegate/adapters.py): each LoRA adapter answers as its merged
copy would, rows of different adapters share a forward, and the base is held once."""

import pytest
import torch

from tunegate.adapters import SharedBases, score_mixed
from tunegate.modeling import load_model, load_tokenizer
from tunegate.scoring import score_answers


@pytest.fixture(scope="module")
def two_adapters(tmp_path_factory, tiny_model_dir):
    """Two LoRA adapters of the tiny model with random (non-zero) weights, as peft saves them."""
    from peft import LoraConfig, get_peft_model

    out = []
    for k in range(2):
        torch.manual_seed(10 + k)
        cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
        model = get_peft_model(load_model(str(tiny_model_dir)), cfg)
        model.save_pretrained(out_dir := tmp_path_factory.mktemp(f"adapter{k}"))
        out.append(out_dir)
    return out


def _merged(tiny_model_dir, adapter_dir):
    from peft import PeftModel

    return PeftModel.from_pretrained(load_model(str(tiny_model_dir)), str(adapter_dir)).merge_and_unload()


def test_adapters_on_one_base_answer_as_their_merged_copies_alone_and_mixed_in_one_batch(tiny_model_dir, two_adapters):
    base_path = str(tiny_model_dir)
    bases = SharedBases()
    shared = bases.get(base_path)
    for k, d in enumerate(two_adapters):
        shared.add_lora(f"v{k}", d)
    answerers = [bases.lm(base_path, "v0"), bases.lm(base_path, "v1"), bases.lm(base_path, None)]
    assert all(a.mixable for a in answerers) and bases.get(base_path) is shared
    prompts = [[100, 101, 102, *range(5, 5 + n)] for n in (3, 5, 8, 4, 6, 7, 2)]
    answers = [[200], [300, 301]]
    owner = [0, 1, 2, 0, 1, 2, 1]
    mixed, _ = score_mixed(answerers, prompts, owner, answers, pad_id=0, batch_size=3)
    references = [_merged(tiny_model_dir, d) for d in two_adapters] + [load_model(base_path)]
    per_version = []
    for k, answerer in enumerate(answerers):
        rows = [i for i, o in enumerate(owner) if o == k]
        alone, _ = answerer.score([prompts[i] for i in rows], answers, pad_id=0, batch_size=3)
        reference, _ = score_answers(references[k], [prompts[i] for i in rows], answers, pad_id=0)
        assert torch.allclose(alone, reference, atol=1e-4), k
        assert torch.allclose(mixed[rows], reference, atol=1e-4), k
        per_version.append(reference)
    # the adapters do change the answers (else the comparison above proves nothing)
    assert (per_version[0] - per_version[2][: len(per_version[0])]).abs().max() > 1e-2

    # generation with an adapter: the merged copy's greedy tokens
    tok = load_tokenizer(base_path)
    ids = [[100, 101, 102, 5, 6]]
    texts, _ = answerers[1].generate(tok, ids, max_new_tokens=6, batch_size=1, stop_ids=[tok.eos_token_id])
    from tunegate.scoring import generate

    assert texts == generate(references[1], tok, ids, max_new_tokens=6, stop_ids=[tok.eos_token_id])[0]

    # one copy of the base, two small adapters; an unloaded adapter leaves
    mem = bases.memory()[base_path]
    base_params = sum(p.numel() * p.element_size() for p in load_model(base_path).parameters())
    assert mem["base_bytes"] == base_params and 0 < mem["adapter_bytes"] < base_params / 10
    assert mem["adapters"] == ["v0", "v1"]
    shared.drop("v0")
    assert bases.memory()[base_path]["adapters"] == ["v1"]
    again, _ = answerers[2].score(prompts[:2], answers, pad_id=0)  # the base alone, adapters present
    assert torch.allclose(again, score_answers(references[2], prompts[:2], answers, pad_id=0)[0], atol=1e-5)
