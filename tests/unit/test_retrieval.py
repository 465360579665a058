"""Retrieval (bm25s, the packaged MiniLM, hybrid RRF), the leakage guard, document chunking, calibration."""

import json

import polars as pl
import pytest
import torch

from tunegate import retrieval
from tunegate.documents import DocumentError, chunk_text, collection_hash, load_chunks
from tunegate.ladder.core import calibration_offset

CORPUS = {
    "cat": "The cat sat on the mat and purred.",
    "kitten": "A small kitten is sleeping on the rug.",
    "dog": "Dogs love to play fetch in the park.",
    "stocks": "Stock markets fell sharply on Monday after the earnings report.",
    "rates": "The central bank raised interest rates by half a point.",
    "soup": "Simmer the tomato soup for twenty minutes, then add basil.",
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("indexes")


def top(index, query, k=2):
    hits, _ = index.search([query], k)
    return [h.id for h in hits[0]]


def test_bm25_finds_the_lexical_match(cache):
    index = retrieval.build_index(list(CORPUS), list(CORPUS.values()), kind="bm25", cache_dir=cache)
    assert top(index, "which stock markets fell on Monday", 1) == ["stocks"]
    assert top(index, "tomato soup with basil", 1) == ["soup"]


def test_dense_finds_the_paraphrase_bm25_cannot(cache):
    # no word in common with the 'kitten' entry, but the same meaning
    dense = retrieval.build_index(list(CORPUS), list(CORPUS.values()), kind="dense", cache_dir=cache)
    assert top(dense, "a young feline napping on a carpet", 1) == ["kitten"]
    assert top(dense, "monetary policy tightening by the Fed", 1) == ["rates"]
    assert dense.embeddings.shape == (len(CORPUS), 384)
    assert torch.allclose(torch.from_numpy(dense.embeddings).norm(dim=1), torch.ones(len(CORPUS)), atol=1e-4)


def test_hybrid_fuses_both_rankings(cache):
    hybrid = retrieval.build_index(list(CORPUS), list(CORPUS.values()), kind="hybrid", cache_dir=cache)
    assert top(hybrid, "which stock markets fell on Monday", 1) == ["stocks"]
    assert top(hybrid, "a young feline napping on a carpet", 1) == ["kitten"]
    # reciprocal rank fusion: a document first in both lists outranks one first in a single list
    lex = hybrid._rank_bm25(["cat on the mat"], 6, matches_only=True)[0]
    den = hybrid._rank_dense(["cat on the mat"], 6)[0]
    assert lex[0][0] == den[0][0] == 0
    assert top(hybrid, "cat on the mat", 1) == ["cat"]


def test_leakage_guard_never_returns_the_query_or_its_duplicate(cache):
    ids = [*CORPUS, "cat-dup"]
    texts = [*CORPUS.values(), "  the CAT sat on the mat   and purred. "]  # same text up to case/whitespace
    for kind in retrieval.RETRIEVERS:
        index = retrieval.build_index(ids, texts, kind=kind, cache_dir=cache)
        hits, stats = index.search(["The cat sat on the mat and purred.", "Dogs love to play fetch in the park."], 3)
        assert {"cat", "cat-dup"}.isdisjoint(h.id for h in hits[0]), kind
        assert "dog" not in [h.id for h in hits[1]], kind
        assert len(hits[0]) == 3 and len(hits[1]) == 3  # still k results, from the rest of the corpus
        assert stats.excluded >= 3, kind  # both copies of the cat text, the dog text


def test_index_is_cached_by_content_and_rebuilt_when_it_changes(cache):
    texts = ["alpha beta", "gamma delta", "epsilon zeta"]
    first = retrieval.build_index(["a", "b", "c"], texts, kind="bm25", cache_dir=cache)
    again = retrieval.build_index(["a", "b", "c"], texts, kind="bm25", cache_dir=cache)
    changed = retrieval.build_index(["a", "b", "c"], [*texts[:2], "eta theta"], kind="bm25", cache_dir=cache)
    assert not first.cached and again.cached and not changed.cached
    assert first.path == again.path != changed.path
    assert not list(cache.glob(".*.tmp"))  # no half-built index left behind
    assert json.loads((first.path / "index.json").read_text())["n"] == 3


def test_bad_retrieval_inputs_say_what_to_do(cache):
    with pytest.raises(ValueError, match="unknown retriever 'fuzzy'"):
        retrieval.build_index(["a"], ["x"], kind="fuzzy", cache_dir=cache)
    with pytest.raises(ValueError, match="empty corpus"):
        retrieval.build_index([], [], kind="bm25", cache_dir=cache)
    with pytest.raises(FileNotFoundError, match="not a sentence-transformers folder"):
        retrieval.embedder_path("/nonexistent/model")


def test_chunking_follows_paragraphs_and_overlaps_long_ones():
    text = "one two three\n\nfour five\n\n" + " ".join(f"w{i}" for i in range(25))
    chunks = chunk_text(text, chunk_words=10, overlap_words=3)
    assert chunks[0] == "one two three four five"
    long = chunks[1:]
    assert long[0].split()[:2] == ["w0", "w1"] and all(len(c.split()) <= 10 for c in long)
    assert long[1].split()[0] == "w7"  # 10 - 3 overlap
    assert long[-1].split()[-1] == "w24"


def test_document_folder_reading(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\nThe Zorblax fruit is violet.\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jsonl").write_text(json.dumps({"id": "x1", "title": "Q", "text": "Answer here."}) + "\n\n")
    (tmp_path / "ignored.pdf").write_bytes(b"%PDF")
    chunks = load_chunks(tmp_path, chunk_words=50, overlap_words=5)
    assert [c.id for c in chunks] == ["a.md#0", "sub/b.jsonl:x1#0"]
    assert "violet" in chunks[0].text and chunks[1].text == "Q Answer here."
    before = collection_hash(tmp_path)
    (tmp_path / "a.md").write_text("# Title\n\nThe Zorblax fruit is green.\n")
    assert collection_hash(tmp_path) != before


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "not found"),
        (lambda p: p.mkdir(), "no .txt, .md or .jsonl files"),
        (lambda p: (p.mkdir(), (p / "d.jsonl").write_text("{not json}\n")), "d.jsonl line 1: not valid JSON"),
        (lambda p: (p.mkdir(), (p / "d.jsonl").write_text('{"body": "x"}\n')), "string field 'text'"),
        (lambda p: (p.mkdir(), (p / "d.txt").write_text("   \n")), "contain no text"),
    ],
)
def test_bad_document_folders_get_a_clear_error(tmp_path, setup, message):
    folder = tmp_path / "docs"
    setup(folder)
    with pytest.raises(DocumentError, match=message):
        load_chunks(folder)


def test_calibration_offset_removes_the_label_bias():
    # the model says label 0 for everything: content-free inputs score 0.9 / 0.1
    content_free = torch.log(torch.tensor([[0.9, 0.1], [0.85, 0.15], [0.95, 0.05]]))
    offset = torch.tensor(calibration_offset(content_free))
    inputs = torch.log(torch.tensor([[0.8, 0.2], [0.95, 0.05]]))  # the first is "less sure" than the bias
    calibrated = (inputs + offset).argmax(dim=1).tolist()
    assert inputs.argmax(dim=1).tolist() == [0, 0] and calibrated == [1, 0]
    # a uniform model gets no correction; a target prior shifts toward the frequent label
    assert calibration_offset(torch.log(torch.full((4, 2), 0.5))) == pytest.approx([0.6931, 0.6931], abs=1e-3)
    shifted = calibration_offset(torch.log(torch.full((4, 2), 0.5)), target_prior=[0.75, 0.25])
    assert shifted[0] > shifted[1]


def test_generation_eval_rows_group_references(tmp_path):
    from tunegate.validation import group_references

    evl = pl.DataFrame({"_row": [1, 2, 3, 4], "input": ["a", "b", "a", "a"], "target": ["x", "y", "z", "w"]})
    g = group_references(evl)
    assert g.get_column("input").to_list() == ["a", "b"]
    assert g.get_column("references").to_list() == [["x", "z", "w"], ["y"]]
    assert g.get_column("_row").to_list() == [1, 2]


def test_ladder_config_shorthands_and_rungs(tmp_path, tiny_model_dir, toy_data):
    from tests.conftest import make_config
    from tunegate.config import load_config
    from tunegate.errors import ConfigError
    from tunegate.ladder.core import baseline_rungs

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("facts")
    cfg = load_config(
        make_config(
            tmp_path,
            tiny_model_dir,
            toy_data,
            baselines={
                "few_shot": False,
                "retrieved_few_shot": {"k": 2, "retriever": "bm25"},
                "rag": "docs",
                "calibrated": True,
            },
        )
    )
    names = [r.name for r in baseline_rungs(cfg.baselines, cfg.ladder_context())]
    assert names == [
        "zero_shot",
        "zero_shot_calibrated",
        "retrieved_few_shot_bm25",
        "retrieved_few_shot_bm25_calibrated",
        "rag_hybrid",
        "rag_hybrid_calibrated",
    ]
    rag = baseline_rungs(cfg.baselines, cfg.ladder_context())[4]
    assert rag.params["documents"] == str((tmp_path / "docs").resolve()) and rag.params["k"] == 3
    assert baseline_rungs(cfg.baselines, cfg.ladder_context())[3].base.name == "retrieved_few_shot_bm25"
    with pytest.raises(ConfigError, match=r"retrievers.0: Input should be 'bm25', 'dense' or 'hybrid'"):
        load_config(
            make_config(tmp_path, tiny_model_dir, toy_data, baselines={"retrieved_few_shot": {"retriever": "fuzzy"}})
        )
    with pytest.raises(ConfigError, match="overlap_words 50 must be smaller than chunk_words 40"):
        load_config(
            make_config(
                tmp_path,
                tiny_model_dir,
                toy_data,
                baselines={"rag": {"documents": "docs", "chunk_words": 40, "overlap_words": 50}},
            )
        )


def test_missing_document_folder_fails_validation_with_a_report(tmp_path, tiny_model_dir, toy_data, tiny_tokenizer):
    from tests.conftest import make_config
    from tunegate.config import load_config
    from tunegate.validation import validate

    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, baselines={"rag": "no_such_docs"}))
    out = validate(cfg, tiny_tokenizer)
    assert not out.ok
    issue = next(i for i in out.issues if i.check == "documents")
    assert "document folder not found" in issue.message and "baselines.rag.documents" in issue.message


def test_generation_eval_samples_inputs_and_keeps_all_references(tmp_path, tiny_model_dir, tiny_tokenizer):
    import yaml

    from tests.conftest import make_config
    from tunegate.config import load_config
    from tunegate.validation import validate

    train = pl.DataFrame({"input": [f"name[P{i}]" for i in range(8)], "target": [f"P{i} is a pub." for i in range(8)]})
    evl = pl.DataFrame(
        {
            "input": ["name[A]", "name[B]", "name[A]", "name[C]", "name[A]", "name[B]"],
            "target": ["A1", "B1", "A2", "C1", "A3", "B2"],
        }
    )
    train.write_csv(tmp_path / "train.csv")
    evl.write_csv(tmp_path / "eval.csv")
    path = make_config(
        tmp_path,
        tiny_model_dir,
        {"train": tmp_path / "train.csv", "eval": tmp_path / "eval.csv"},
        task="generation",
        data={"max_eval_rows": 2},
    )
    raw = yaml.safe_load(path.read_text())
    del raw["data"]["labels"]
    path.write_text(yaml.safe_dump(raw))
    out = validate(load_config(path), tiny_tokenizer)
    assert out.ok, out.summary()
    assert out.eval.height == 2  # two inputs sampled, not two reference rows
    refs = dict(zip(out.eval.get_column("input").to_list(), out.eval.get_column("references").to_list()))
    expected = {"name[A]": ["A1", "A2", "A3"], "name[B]": ["B1", "B2"], "name[C]": ["C1"]}
    assert all(refs[k] == expected[k] for k in refs)
