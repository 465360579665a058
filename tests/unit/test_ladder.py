"""The ladder's rung kinds as plugins: a contract every registered kind meets, and a kind defined here that shows
up in the config, the ladder, the cache key, the report and the decision with no other edit."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest
from pydantic import Field

from tests.conftest import make_config
from tunegate import stages
from tunegate.config import load_config, parse_config, reference_markdown
from tunegate.errors import ConfigError
from tunegate.ladder import RUNGS, Augment, LadderContext, Rung, RungKind, register_rung, unregister_rung
from tunegate.ladder import core as ladder
from tunegate.records import GateInputs
from tunegate.strict import Strict

CTX = LadderContext(
    task="classification", label_answers={"pos": "positive", "neg": "negative"}, conversational=False, split_seed=0
)
TRAIN = pl.DataFrame({"_row": [0, 1, 2, 3], "text": ["good", "bad", "great", "awful"], "label": ["pos", "neg"] * 2})

# each built-in kind with settings that enable it (rag needs a folder of documents: made in the test)
ENABLED = {
    "zero_shot": True,
    "few_shot": {"k": 2},
    "retrieved_few_shot": {"k": 1, "retrievers": ["bm25"]},
    "rag": {"documents": "docs", "k": 1, "retrievers": ["bm25"]},
    "optimized_prompt": {"enabled": True, "k": 2, "max_candidates": 6},
}


def fake_env(train=TRAIN, instruction="Classify: {labels}."):
    """A SearchEnv whose 'model' answers right where the instruction mentions 'expert' or demonstrations are given
    (so the search has something to find), and writes a fixed instruction."""
    from tunegate.ladder.base import Scored, SearchEnv

    def score(instr, shots, frame):
        refs = frame.get_column("label").to_list()
        good = "expert" in instr or shots is not None
        preds = refs if good else ["pos"] * len(refs)
        acc = sum(p == r for p, r in zip(preds, refs)) / len(refs)
        return Scored(acc, preds, refs, prompt_tokens=10 * len(refs) * (1 + bool(shots)), seconds=0.0)

    return SearchEnv(train, train, instruction, score, lambda request, n: "Decide the sentiment of the text.")


def test_every_registered_rung_kind_is_in_the_contract_table():
    assert list(RUNGS) == list(ENABLED)  # the ladder's order, cheapest first


def test_the_ladder_and_the_rung_settings_load_without_their_implementations():
    """The config reads the rungs' settings; their implementations (polars, retrieval, documents) load when a
    rung is first used."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import tunegate.config, tunegate.ladder\n"
        "print(sorted(m for m in sys.modules if m.endswith('.rung') or m in ('polars', 'tunegate.retrieval')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("key", list(ENABLED))
def test_rung_kind_contract(key, tmp_path):
    """Config round trip, expansion, prompt additions, cache fingerprint and description, for every kind."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("Refunds take five days.\n\nCards can be frozen in the app.")
    entry = RUNGS[key]
    kind = entry.load()
    raw = {"task": "classification", "data": {"train": "t.csv", "labels": ["pos", "neg"]}}
    cfg = parse_config({**raw, "baselines": {key: ENABLED[key]}}, config_dir=tmp_path)
    settings = getattr(cfg.baselines, key)
    assert entry.enabled(settings)
    ctx = cfg.ladder_context()
    rungs = kind.expand(settings, ctx)
    assert rungs and all(r.kind == key for r in rungs)
    assert [r for r in ladder.baseline_rungs(cfg.baselines, ctx) if r.kind == key] == rungs
    twins = [r for r in ladder.baseline_rungs(cfg.baselines, ctx) if r.base in rungs]
    assert [t.name for t in twins] == [f"{r.name}_calibrated" for r in rungs]
    # the config dump (config hash, run's config.yaml) carries the rung's settings, and reloads to the same
    again = parse_config(json.loads(json.dumps(cfg.model_dump(mode="json"))), config_dir=tmp_path)
    assert again.config_hash() == cfg.config_hash()
    for rung in rungs:
        json.dumps(ladder.rung_fingerprint(rung))  # the cache key can be computed
        if ladder.searches(rung):  # its prompt is chosen first (on the selection rows)
            rung, record = ladder.search(ctx, rung, fake_env())
            assert ladder.searched(rungs[0], {"search": record}) == rung
        aug = kind.augment(rung, ctx, TRAIN, ["good film", "bad film"])
        if aug is not None:
            assert (aug.shots is not None) or (aug.contexts is not None) or aug.instruction
            assert len(aug.shots or aug.contexts or [1, 2]) == 2
            text = ladder.describe(key, {**aug.details, **({"search": record} if kind.searches else {})})
            assert text and text != ladder.describe("zero_shot", {})
        else:
            assert ladder.describe(key, {}) == "instruction + input"
    # disabled, it measures nothing
    off = {"rag": None}.get(key, False)
    cfg_off = parse_config({**raw, "baselines": {key: off, "zero_shot": key != "zero_shot"}}, config_dir=tmp_path)
    assert not [r for r in ladder.baseline_rungs(cfg_off.baselines, ctx) if r.kind == key]


def test_an_unknown_rung_kind_is_a_clear_error_not_a_silent_description():
    with pytest.raises(KeyError, match="unknown rung kind 'nope'; registered: zero_shot"):
        ladder.describe("nope", {})


class LabelTourSettings(Strict):
    enabled: bool = Field(default=True, description="Measure the label-tour rung.")
    per_label: int = Field(default=1, ge=1, description="Train rows shown per label.")


class LabelTour(RungKind):
    """A rung defined here: `per_label` train rows of every label, in label order, before each input."""

    def expand(self, settings: LabelTourSettings, ctx: LadderContext) -> list[Rung]:
        return [Rung("label_tour", kind=self.key, params={"per_label": settings.per_label})]

    def augment(self, rung: Rung, ctx: LadderContext, train: Any, texts: list[str]) -> Augment:
        n = rung.params["per_label"]
        shots = [
            (text, ctx.answer(label))
            for label in ctx.label_answers
            for text in train.filter(pl.col("label") == label).get_column("text").to_list()[:n]
        ]
        return Augment(shots=[shots] * len(texts), details={"tour": len(shots)})

    def describe(self, details: dict[str, Any]) -> str:
        return f"a tour of {details['tour']} labelled train rows + input"


@pytest.fixture
def label_tour():
    register_rung(
        "label_tour",
        settings=LabelTourSettings,
        default=lambda: LabelTourSettings(enabled=False),
        description="Label tour: per_label train rows of every label as demonstrations.",
        implementation=LabelTour(),
    )
    try:
        yield
    finally:
        unregister_rung("label_tour")
    assert "label_tour" not in RUNGS


def test_a_new_rung_needs_no_edit_outside_its_module(tmp_path, tiny_model_dir, toy_data, label_tour):
    """Registered here, the rung is a config key (validated, documented, hinted), a rung of the ladder with its
    calibrated twin, part of the cache key, a row of the report described in its own words, and a candidate for
    the best baseline in the decision."""
    with pytest.raises(ConfigError, match=r"baselines.label_tour.per_label: .*greater than or equal to 1"):
        parse_config(
            {"task": "classification", "data": {"train": "t.csv"}, "baselines": {"label_tour": {"per_label": 0}}}
        )
    with pytest.raises(ConfigError, match="did you mean 'label_tour'"):
        parse_config({"task": "classification", "data": {"train": "t.csv"}, "baselines": {"label_tuor": True}})
    assert "| `per_label` |" in reference_markdown() and "## baselines.label_tour" in reference_markdown()

    cfg = load_config(
        make_config(
            tmp_path,
            tiny_model_dir,
            toy_data,
            baselines={"few_shot": False, "retrieved_few_shot": False, "label_tour": {"per_label": 2}},
            gate={"bootstrap_samples": 200, "min_gain": -1.0},
        )
    )
    assert cfg.baselines.label_tour.per_label == 2
    rungs = ladder.baseline_rungs(cfg.baselines, cfg.ladder_context())
    assert [r.name for r in rungs] == ["zero_shot", "zero_shot_calibrated", "label_tour", "label_tour_calibrated"]
    tour = rungs[2]
    other = Rung("label_tour", kind="label_tour", params={"per_label": 1})
    assert ladder.rung_cache_key("m", "d", tour, "p") != ladder.rung_cache_key("m", "d", other, "p")

    run = stages.prepare_run(cfg)
    dataset = stages.validate_data(cfg, run).dataset
    results: dict[str, Any] = {}
    for r in rungs:
        results[r.name] = stages.evaluate_baseline(cfg, run, dataset, r, results[r.base.name] if r.base else None)
    assert results["label_tour"].rung == "label_tour" and results["label_tour"].details["tour"] == 4
    assert results["label_tour"].prompt_tokens_per_request > results["zero_shot"].prompt_tokens_per_request
    tuned = stages.tune(cfg, run, dataset, progress=False)
    tuned_eval = stages.evaluate_tuned(cfg, run, dataset, tuned)
    decision = stages.compare(
        cfg, run, dataset, GateInputs(baselines=list(results.values()), tuned_eval=tuned_eval, tuned=tuned)
    )
    assert {"label_tour", "label_tour_calibrated"} <= {m.name for m in decision.models}
    report = (tmp_path / "runs" / run.run_id / "report.md").read_text()
    assert "a tour of 4 labelled train rows + input" in report
    assert "a tour of 4 labelled train rows + input; label prior corrected" in report
