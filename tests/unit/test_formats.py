"""Data file formats (tunegate/formats/): the registry, the built-in readers, and a format added in a test."""

from pathlib import Path

import polars as pl
import pytest

from tests.conftest import make_config
from tunegate.config import load_config, parse_config
from tunegate.data import ROW, DataReadError, read_table, scan_table
from tunegate.errors import ConfigError
from tunegate.formats import FORMATS, format_of, is_conversation, register_format, unregister_format
from tunegate.formats.delimited import Delimited
from tunegate.validation import validate

# every built-in format and a file name `format: auto` reads as it
BUILT_IN = {
    "csv": "t.csv",
    "tsv": "t.tsv",
    "jsonl": "t.ndjson",
    "parquet": "t.pq",
    "lines": "TREC_10.label",
}


@pytest.mark.parametrize("name", BUILT_IN)
def test_auto_picks_each_format_by_its_suffix(name):
    assert format_of(Path(BUILT_IN[name]), "auto").name == name
    assert format_of(Path("whatever.bin"), name).name == name  # named explicitly, the suffix does not matter


def test_the_registry_knows_the_conversation_formats_and_refuses_unknown_names():
    assert [n for n in FORMATS if is_conversation(n)] == ["messages", "sharegpt", "alpaca"]
    assert not is_conversation("csv") and not is_conversation("nope")
    with pytest.raises(
        DataReadError, match=r"unknown file extension '.txt'. Use .csv, .tsv, .jsonl, .parquet or .label"
    ):
        format_of(Path("t.txt"), "auto")
    with pytest.raises(ConfigError, match="data.format: unknown data.format 'jsonll'; did you mean 'jsonl'"):
        parse_config({"task": "classification", "data": {"train": "t.csv", "format": "jsonll"}})


def test_each_text_format_reads_the_same_rows(tmp_path):
    rows = [("a good film", "pos"), ("dull, slow", "neg")]
    pl.DataFrame({"text": [t for t, _ in rows], "label": [y for _, y in rows]}).write_csv(tmp_path / "t.csv")
    (tmp_path / "t.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    pl.DataFrame({"text": [t for t, _ in rows], "label": [y for _, y in rows]}).write_ndjson(tmp_path / "t.jsonl")
    pl.DataFrame({"text": [t for t, _ in rows], "label": [y for _, y in rows]}).write_parquet(tmp_path / "t.parquet")
    (tmp_path / "t.label").write_text("".join(f"{y} {t}\n\n" for t, y in rows))
    for name in ("t.csv", "t.tsv", "t.jsonl", "t.parquet", "t.label"):
        df = read_table(tmp_path / name)
        assert df.select("text", "label").rows() == rows, name
    # lines numbers its rows by line (blank lines skipped), the others 1, 2, ...
    assert read_table(tmp_path / "t.label").get_column(ROW).to_list() == [1, 3]
    assert read_table(tmp_path / "t.csv").get_column(ROW).to_list() == [1, 2]


def test_a_malformed_file_is_explained_by_its_format(tmp_path):
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"text": "ok", "label": "a"}\n[1, 2]\n{"text": \n')
    with pytest.raises(DataReadError, match=r"line 2 is a JSON list, not an object \(bad lines: 2, 3\)"):
        scan_table(bad).collect()
    ragged = tmp_path / "t.csv"
    ragged.write_text("text,label\nfine,pos\ntoo,many,fields\n")
    with pytest.raises(DataReadError, match="line 3 has 3 fields, the header 2"):
        scan_table(ragged).collect()


class PipeSeparated(Delimited):
    """A format a user adds: pipe-separated values, claimed by the .psv suffix."""

    name = "psv"
    suffixes = (".psv",)
    description = "pipe-separated, a header row"
    separator = "|"


def test_a_new_format_needs_no_edit_outside_its_module(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    """One class and its registration: `data.format: psv` is a config choice, `auto` reads .psv files by it, the
    validation checks its rows and names their lines, and a malformed file is explained by its own rules."""
    register_format(PipeSeparated())
    try:
        for split in ("train", "eval"):
            df = pl.read_csv(toy_data[split])
            lines = [f"{t}|{y}" for t, y in df.select("text", "label").iter_rows()]
            (tmp_path / f"{split}.psv").write_text("text|label\n" + "\n".join(lines) + "\n")
        files = {"train": tmp_path / "train.psv", "eval": tmp_path / "eval.psv"}
        cfg = load_config(make_config(tmp_path, tiny_model_dir, files))
        out = validate(cfg, tiny_tokenizer)
        assert out.ok, out.summary()
        assert out.train.height == 14 and out.eval.height == 6
        named = load_config(make_config(tmp_path, tiny_model_dir, files, data={"format": "psv"}))
        assert named.data.format == "psv" and validate(named, tiny_tokenizer).ok
        (tmp_path / "train.psv").write_text("text|label\na fine film|pos\n|\nbroken|row|here\n")
        bad = validate(cfg, tiny_tokenizer)
        issue = next(i for i in bad.issues if i.severity == "error")
        assert "line 4 has 3 fields, the header 2" in issue.message and "'|'" in issue.message
    finally:
        unregister_format("psv")
    with pytest.raises(ConfigError, match="unknown data.format 'psv'"):
        load_config(make_config(tmp_path, tiny_model_dir, files, data={"format": "psv"}))
