"""Property-based tests (hypothesis): the config loader, the data readers and the registry's names hold their
contracts for any input, not only the cases someone thought of."""

from __future__ import annotations

import json
import string
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tunegate.config import TunegateConfig, load_config
from tunegate.data import DataReadError, read_table, same_texts
from tunegate.errors import ConfigError, RegistryError
from tunegate.registry import ALIAS_PATTERN, MODEL_NAME_PATTERN, Registry, check_alias, check_model_name

# derandomize: CI draws the same examples every run (a failure is reproducible, never a coin toss); run with
# derandomize=False (and more max_examples) locally to search further
SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True), st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KEYS = ["task", "model", "data", "method", "gate", "baselines", "prompt", "registry", "output", "costs", "hardware"]


def _valid(tmp: Path) -> dict:
    (tmp / "train.csv").write_text("text,label\na,pos\n")
    return {
        "task": "classification",
        "model": "smollm2-135m-instruct",
        "data": {"train": "train.csv", "labels": ["pos", "neg"]},
    }


@SETTINGS
@given(text=st.text(max_size=400))
def test_any_text_as_a_config_is_a_config_or_a_config_error(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        assert isinstance(load_config(path), TunegateConfig)
    except ConfigError as exc:
        assert str(exc) and len(str(exc)) < 5000  # one readable message, never the whole (maybe huge) value


@SETTINGS
@given(
    key=st.sampled_from(KEYS),
    sub=st.one_of(st.none(), st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)),
    value=values,
)
def test_any_value_at_any_key_is_accepted_or_named(tmp_path, key, sub, value):
    """A valid config with one key replaced by anything: it loads, or the error names the key."""
    raw = _valid(tmp_path)
    if sub is None or not isinstance(raw.get(key), dict):
        raw[key] = value
        where = key
    else:
        raw[key] = {**raw[key], sub: value}
        where = f"{key}.{sub}"
    path = tmp_path / "config.yaml"
    try:
        path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    except (yaml.YAMLError, ValueError):
        assume(False)
    try:
        load_config(path)
    except ConfigError as exc:
        assert key in str(exc) or where in str(exc), str(exc)


row_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=60
).filter(lambda t: t.strip() != "")


@SETTINGS
@given(
    rows=st.lists(st.tuples(row_text, st.sampled_from(["pos", "neg"])), min_size=1, max_size=25),
    fmt=st.sampled_from(["csv", "jsonl", "parquet"]),
)
def test_written_rows_read_back_exactly_with_their_row_numbers(tmp_path, rows, fmt):
    df = pl.DataFrame(rows, schema=["text", "label"], orient="row")
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        df.write_csv(path)
    elif fmt == "jsonl":
        df.write_ndjson(path)
    else:
        df.write_parquet(path)
    got = read_table(path)
    assert got.get_column("text").to_list() == [t for t, _ in rows]
    assert got.get_column("label").to_list() == [y for _, y in rows]
    assert got.get_column("_row").to_list() == list(range(1, len(rows) + 1))


@SETTINGS
@given(blob=st.binary(max_size=600), fmt=st.sampled_from(["csv", "tsv", "jsonl", "parquet"]))
@example(blob=b"\r\x01", fmt="csv")  # found by this test: a bare CR in the header broke the duplicate-column check
def test_any_bytes_read_or_fail_with_a_data_read_error(tmp_path, blob, fmt):
    path = tmp_path / f"data.{fmt}"
    path.write_bytes(blob)
    try:
        read_table(path)
    except DataReadError as exc:
        assert str(path) in str(exc)


@SETTINGS
@given(text=st.text(max_size=80))
def test_same_text_ignores_case_spacing_and_punctuation_and_is_idempotent(text):
    (key,) = same_texts([text])
    assert same_texts([key]) == [key]
    assert same_texts([f"  {text.upper()} !?. "]) == same_texts([text.upper()])


@pytest.mark.parametrize("check,pattern", [(check_model_name, MODEL_NAME_PATTERN), (check_alias, ALIAS_PATTERN)])
@SETTINGS
@given(name=st.text(max_size=30))
def test_names_are_accepted_exactly_by_their_rule_and_stay_inside_the_registry(tmp_path, check, pattern, name):
    import re

    ok = re.fullmatch(pattern, name) is not None
    try:
        check(name)
    except RegistryError as exc:
        assert not ok and "not a valid" in str(exc)
        return
    assert ok
    if check is check_model_name:
        d = Registry(tmp_path / "registry")._model_dir(name).resolve()
        assert d.parent == (tmp_path / "registry").resolve()  # a folder of the root, never outside it


def test_a_registry_alias_write_never_leaves_the_root(tmp_path):
    reg = Registry(tmp_path / "registry")
    reg.register("m", files={"a.txt": "x"}, dirs={}, meta={})
    for bad in ["../x", "a/b", "", " production", "prod\n", "x" * 0]:
        with pytest.raises(RegistryError):
            reg.set_alias("m", bad, 1)
    assert (
        json.loads(
            (tmp_path / "registry" / "m" / "aliases.json").read_text()
            if (tmp_path / "registry" / "m" / "aliases.json").exists()
            else "{}"
        )
        == {}
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry"]
