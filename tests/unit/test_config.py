from pathlib import Path

import pytest

from tunegate.config import load_config, parse_config
from tunegate.errors import ConfigError
from tunegate.methods.lora import LoraSettings

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(
    p for p in (ROOT / "examples").rglob("*.yaml") if not {"runs", "registry"} & set(p.relative_to(ROOT).parts)
)


def base(**kw):
    raw = {"task": "classification", "data": {"train": "t.csv", "labels": ["a", "b"]}}
    raw.update(kw)
    return raw


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_every_shipped_config_loads(path, tmp_path):
    cfg = load_config(path)
    root = cfg.config_dir
    maker = path.parent / "make_data.py"
    if maker.is_file():  # derived data (not committed): the script must write the files the config names
        import importlib.util

        if not (ROOT.parent / "shared" / "data").is_dir():
            pytest.skip("../shared/data is not beside the checkout")
        spec = importlib.util.spec_from_file_location(f"make_data_{path.parent.name}", maker)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main(["--out", str(tmp_path / "data"), "--train", "20", "--eval", "10"])
        root = tmp_path
    assert (root / cfg.data.train).is_file(), f"{path}: train file {cfg.data.train} missing"
    if cfg.data.eval:
        assert (root / cfg.data.eval).is_file()


def test_shipped_configs_exist():
    assert any(p.parent.name == "quickstart" for p in SHIPPED)


def test_defaults():
    cfg = parse_config(base())
    assert cfg.model == "smollm2-135m-instruct"
    assert isinstance(cfg.method, LoraSettings) and cfg.method.r == 8
    assert cfg.gate_metric == "accuracy"
    assert cfg.baselines.few_shot.enabled and cfg.baselines.few_shot.k == 4


def test_unknown_key_is_an_error_with_a_suggestion():
    with pytest.raises(ConfigError) as e:
        parse_config(base(method={"name": "lora", "epohcs": 3}))
    msg = str(e.value)
    assert "method.epohcs" in msg and "did you mean 'epochs'" in msg


def test_unknown_top_level_key():
    with pytest.raises(ConfigError) as e:
        parse_config(base(gatee={"min_gain": 0.1}))
    assert "gatee: unknown key" in str(e.value) and "'gate'" in str(e.value)


def test_bad_value_names_field_value_and_fix():
    with pytest.raises(ConfigError) as e:
        parse_config(base(method={"name": "lora", "r": 0, "lr": 50}))
    msg = str(e.value)
    assert "method.r" in msg and "got 0" in msg
    assert "method.lr" in msg and "got 50" in msg  # every problem at once


def test_unknown_method():
    with pytest.raises(ConfigError, match="unknown method 'sft'"):
        parse_config(base(method="sft"))


def test_labels_may_come_from_train_and_conversation_files_are_generation_data():
    # no data.labels: validation takes train's labels (tests/unit/test_validation.py)
    assert parse_config({"task": "classification", "data": {"train": "t.csv"}}).data.labels is None
    with pytest.raises(ConfigError, match="conversations, answered by generation; set task: generation"):
        parse_config({"task": "classification", "data": {"train": "t.jsonl", "format": "messages"}})
    with pytest.raises(ConfigError, match="label_pattern.*needs a group"):
        parse_config({"task": "classification", "data": {"train": "t.csv", "label_pattern": "^[A-Z]+:"}})


def test_metric_must_fit_task():
    with pytest.raises(ConfigError, match="rouge_l"):
        parse_config(base(gate={"metric": "rouge_l"}))


def test_label_mapping_and_numeric_labels():
    cfg = parse_config(base(data={"train": "t.csv", "labels": {0: "negative", 1: "positive"}}))
    assert cfg.data.label_answers() == {"0": "negative", "1": "positive"}


def test_micro_batch_cannot_exceed_batch():
    with pytest.raises(ConfigError, match="micro_batch_size"):
        parse_config(base(method={"batch_size": 4, "micro_batch_size": 8}))


def test_missing_file_and_overrides(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "c.yaml"
    p.write_text("task: classification\ndata: {train: x.csv, labels: [a, b]}\n")
    cfg = load_config(p, {"method.epochs": 3, "gate.min_gain": 0.5})
    assert cfg.method.epochs == 3 and cfg.gate.min_gain == 0.5
    assert cfg.resolve(cfg.data.train) == tmp_path / "x.csv"


def test_setting_method_name_switches_the_section_and_says_what_was_dropped():
    quickstart = ROOT / "examples" / "quickstart" / "config.yaml"  # method: lora with r, alpha, lr, batching
    notes: list[str] = []
    overrides = {"method.max_length": 128, "method.name": "linear_probe", "method.epochs": 7}  # set, then inherited
    cfg = load_config(quickstart, overrides, notes)
    probe_defaults = parse_config(base(method={"name": "linear_probe"})).method
    assert cfg.method.name == "linear_probe" and cfg.method.epochs == 7  # later method.* overrides still apply
    assert cfg.method.max_length == 128 and cfg.method.lr == probe_defaults.lr  # inherited; not LoRA's lr
    assert len(notes) == 1 and "dropped alpha" in notes[0] and "target_modules" in notes[0]
    # one family: QLoRA takes every LoRA setting, nothing dropped, no note
    notes.clear()
    cfg = load_config(quickstart, {"method.name": "qlora"}, notes)
    assert (cfg.method.name, cfg.method.r, cfg.method.lr, notes) == ("qlora", 8, 0.0005, [])
    # prompt tuning: the loop budget carries over, the learning rate does not
    cfg = load_config(quickstart, {"method.name": "prompt_tuning", "method.micro_batch_size": 8}, notes)
    assert cfg.method.micro_batch_size == 8 and cfg.method.lr != 0.0005 and "dropped" in notes[0]
    # an unknown name is still the validation error it was
    with pytest.raises(ConfigError, match="unknown method 'lorra'"):
        load_config(quickstart, {"method.name": "lorra"})


def test_invalid_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("task: [classification\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_hostile_yaml_gets_one_clear_error(tmp_path):
    """A key given twice (PyYAML would silently keep the last `gate:`), an alias bomb (9 levels of 9 aliases: a
    billion values if expanded), deep nesting and a Latin-1 file: each a ConfigError naming the problem."""
    p = tmp_path / "c.yaml"
    p.write_text("task: classification\ngate: {metric: accuracy}\ndata: {train: x.csv}\ngate: {min_gain: 0.1}\n")
    with pytest.raises(ConfigError, match=r"key 'gate' appears twice \(first at line 2\)"):
        load_config(p)
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    p.write_text("\n".join(bomb) + "\ntask: *a9\n")
    with pytest.raises(ConfigError, match="alias bomb"):
        load_config(p)
    p.write_text("task: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply|not valid YAML"):
        load_config(p)
    p.write_bytes("task: classification\n# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="line 2 is not UTF-8"):
        load_config(p)


def test_config_reference_is_current():
    from tunegate.config import reference_markdown

    doc = (ROOT / "docs" / "CONFIG.md").read_text()
    assert doc.strip() == reference_markdown().strip(), "regenerate: python -m tunegate.config > docs/CONFIG.md"


def test_every_field_reachable_from_the_root_is_in_the_reference():
    """Read independently of the generator: pydantic's JSON schema of the root (every nested section) and of
    each registered method's settings; each property must be a row of its section in docs/CONFIG.md."""
    from tunegate.config import TunegateConfig
    from tunegate.methods import METHODS, AutoSettings

    doc = (ROOT / "docs" / "CONFIG.md").read_text()
    rows = {line.split("`")[1] for line in doc.splitlines() if line.startswith("| `")}
    schemas = [TunegateConfig.model_json_schema(), *(e.config_class.model_json_schema() for e in METHODS.values())]
    schemas.append(AutoSettings.model_json_schema())
    fields = set()
    for schema in schemas:
        for section in [schema, *schema.get("$defs", {}).values()]:
            fields |= set(section.get("properties", {}))
    assert fields, "no fields found"
    assert {"hardware", "forecast", "processes", "fractions", "patience", "r", "pooling"} <= fields
    fields.discard("config_dir")  # set by the loader, not a YAML key (excluded from dumps)
    assert not fields - rows, f"fields missing from docs/CONFIG.md: {sorted(fields - rows)}"
    titles = {line[3:].split(":")[0] for line in doc.splitlines() if line.startswith("## ")}
    assert {"hardware", "forecast", "method.early_stopping", "baselines.rag"} <= titles


def test_generation_rejects_labels_and_defaults_to_rouge():
    with pytest.raises(ConfigError, match="generation task has no label set"):
        parse_config({"task": "generation", "data": {"train": "t.csv", "labels": ["a", "b"]}})
    assert parse_config({"task": "generation", "data": {"train": "t.csv"}}).gate_metric == "rouge_l"


def test_qlora_errors_name_the_field_without_the_union_tag():
    with pytest.raises(ConfigError) as e:
        parse_config(base(method={"name": "qlora", "r": 0, "epohcs": 2}))
    msg = str(e.value)
    assert "method.r:" in msg and "method.qlora" not in msg
    assert "method.epohcs" in msg and "did you mean 'epochs'" in msg


def test_compare_defaults_inherit_what_is_comparable():
    cfg = parse_config(
        base(method={"name": "lora", "lr": 5e-4, "r": 4, "epochs": 2, "max_length": 96, "batch_size": 8})
    )
    by = {m.name: m for m in cfg.compare_methods()}
    assert set(by) == {"lora", "qlora", "prompt_tuning", "linear_probe"}
    assert by["qlora"].lr == 5e-4 and by["qlora"].r == 4 and by["qlora"].epochs == 2  # LoRA's sibling: same settings
    assert by["prompt_tuning"].lr == 3e-2 and by["prompt_tuning"].epochs == 2 and by["prompt_tuning"].batch_size == 8
    assert (
        by["linear_probe"].max_length == 96 and by["linear_probe"].epochs == 300
    )  # probe epochs are passes over features
    explicit = parse_config(base(compare=["lora", {"name": "linear_probe", "pooling": "mean"}]))
    assert [m.name for m in explicit.compare_methods()] == ["lora", "linear_probe"]


def test_generation_task_rejects_the_probe_with_the_alternatives():
    with pytest.raises(
        ConfigError, match=r"'linear_probe' does not apply to generation tasks.*\['lora', 'qlora', 'prompt_tuning'\]"
    ):
        parse_config({"task": "generation", "data": {"train": "x.csv"}, "method": "linear_probe"})


def test_a_top_level_key_yaml_reads_as_a_boolean_is_a_config_error(tmp_path):
    """'NO:' is {False: None} to YAML 1.1; found by the property test: a clear error, not a TypeError."""
    p = tmp_path / "c.yaml"
    p.write_text("NO:\n")
    with pytest.raises(ConfigError, match="top-level keys must be names .* got False: YAML reads unquoted yes/no"):
        load_config(p)


def test_resolved_settings_fill_only_what_is_auto():
    """Validation's choice for max_length 'auto' reaches the method and every compare entry still at 'auto'; a set
    value stays. Data settings (labels found in train) are applied as before."""
    cfg = parse_config(base(compare=[{"name": "lora"}, {"name": "linear_probe", "max_length": 96}]))
    assert cfg.method.max_length == "auto" and cfg.method.micro_batch_size == "auto"
    done = cfg.with_resolved({"method": {"max_length": 300}, "data": {"labels": ["a", "b"]}})
    assert done.method.max_length == 300 and [m.max_length for m in done.compare] == [300, 96]
    assert done.data.labels == ["a", "b"] and done.method.micro_batch_size == "auto"
    fixed = parse_config(base(method={"name": "lora", "max_length": 128}))
    assert fixed.with_resolved({"method": {"max_length": 300}}).method.max_length == 128
    assert cfg.with_resolved({}) is cfg


def test_list_labels_false_drops_the_list_from_the_default_instruction():
    from tunegate.problems import task_type

    cls = task_type("classification")
    assert "{labels}" in cls.instruction(True) and "{labels}" not in cls.instruction(False)
    assert task_type("regression").instruction(False) == task_type("regression").default_instruction
    with pytest.raises(ConfigError, match=r"prompt.instruction contains '\{labels\}' but prompt.list_labels"):
        parse_config(base(prompt={"instruction": "One of {labels}", "list_labels": False}))


def test_orchestration_says_how_to_write_an_address_and_a_deployment_and_is_not_in_the_config_hash():
    assert parse_config(base()).orchestration.task_runner == "sequential"
    with pytest.raises(ConfigError, match=r"orchestration.address.*write it as tcp://HOST:PORT"):
        parse_config(base(orchestration={"task_runner": "dask", "address": "scheduler:8786"}))
    with pytest.raises(ConfigError, match="set task_runner: dask too"):
        parse_config(base(orchestration={"address": "tcp://scheduler:8786"}))
    with pytest.raises(ConfigError, match="write FLOW/DEPLOYMENT, e.g. tunegate-tune/tune-gpu"):
        parse_config(base(orchestration={"tune_on": "tune-gpu"}))
    with pytest.raises(ConfigError, match="orchestration.task_runner"):
        parse_config(base(orchestration={"task_runner": "ray"}))
    dask = parse_config(base(orchestration={"task_runner": "dask", "workers": 4, "tune_on": "tunegate-tune/gpu"}))
    assert dask.config_hash() == parse_config(base()).config_hash()  # where tasks run changes no result
    assert dask.config_hash() != parse_config(base(gate={"min_gain": 0.1})).config_hash()
