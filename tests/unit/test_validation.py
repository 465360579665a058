"""Every bad-input case is caught by name, with the failing rows; good data passes."""

import polars as pl

from tests.conftest import make_config, write_csv
from tunegate.config import load_config
from tunegate.validation import validate, write_report


def run_checks(tmp_path, tiny_model_dir, tokenizer, files, **sections):
    cfg = load_config(make_config(tmp_path, tiny_model_dir, files, **sections))
    return validate(cfg, tokenizer)


def checks(outcome, severity="error"):
    return {i.check: i for i in outcome.issues if i.severity == severity}


def test_clean_data_passes(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data)
    assert out.ok, out.summary()
    assert out.train.height == 14 and out.eval.height == 6
    assert out.stats["class_balance"]["train"] == {"pos": 7, "neg": 7}
    assert len(out.stats["data_hash"]) == 64
    md, js = write_report(out, tmp_path / "rep")
    assert "PASSED" in md.read_text() and js.is_file()


def test_missing_file(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {**toy_data, "train": tmp_path / "missing.csv"})
    assert not out.ok and "file not found" in checks(out)["readable"].message


def test_wrong_format(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    bad = tmp_path / "train.parquet"
    bad.write_text("this is not parquet")
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {**toy_data, "train": bad})
    assert "could not be read as parquet" in checks(out)["readable"].message
    txt = tmp_path / "train.txt"
    txt.write_text("x")
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {**toy_data, "train": txt})
    assert "unknown file extension" in checks(out)["readable"].message


def test_missing_column_names_the_fix(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data, data={"text_column": "message"})
    issue = checks(out)["required_columns"]
    assert "no column 'message'" in issue.message and "text_column" in issue.message


def test_empty_texts_missing_labels_and_unknown_labels_name_rows(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    train = tmp_path / "t.csv"
    train.write_text('text,label\nfine film,pos\n"",neg\n   ,pos\nmeh,maybe\nbad,neg\ngood,pos\nok,\nnice,pos\n')
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {**toy_data, "train": train})
    found = checks(out)
    assert found["empty_text"].rows == [2, 3]
    assert found["unknown_labels"].rows == [4] and "maybe" in found["unknown_labels"].message
    assert found["null_values"].rows == [7] and "'label'" in found["null_values"].message
    summary = out.summary()
    assert "[empty_text]" in summary and "rows 2, 3" in summary and "[unknown_labels]" in summary


def test_duplicates_error_then_drop(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    df = pl.read_csv(toy_data["train"])
    dup = pl.concat([df, df.head(2)])
    dup.write_csv(tmp_path / "dup.csv")
    data = {**toy_data, "train": tmp_path / "dup.csv"}
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, data)
    assert checks(out)["duplicates"].rows == [15, 16]
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, data, data={"duplicates": "drop"})
    assert out.ok and out.train.height == 14 and "duplicates" in checks(out, "warning")


def test_conflicting_labels(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    df = pl.read_csv(toy_data["train"])
    df = pl.concat([df, pl.DataFrame({"text": [df["text"][0]], "label": ["neg"]})])
    df.write_csv(tmp_path / "c.csv")
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {**toy_data, "train": tmp_path / "c.csv"})
    assert checks(out)["conflicting_labels"].rows == [1, 15]


def test_leakage_error_then_drop(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    ev = pl.concat([pl.read_csv(toy_data["eval"]), pl.read_csv(toy_data["train"]).head(1)])
    ev.write_csv(tmp_path / "leak.csv")
    data = {**toy_data, "eval": tmp_path / "leak.csv"}
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, data)
    assert checks(out)["leakage"].rows == [7]
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, data, data={"leakage": "drop"})
    assert out.ok and out.eval.height == 6


def test_min_examples_per_label(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    rows = [("good one", "pos"), ("great one", "pos"), ("bad one", "neg")]
    out = run_checks(
        tmp_path, tiny_model_dir, tiny_tokenizer, {**toy_data, "train": write_csv(tmp_path / "m.csv", rows)}
    )
    assert "neg (1)" in checks(out)["min_examples_per_label"].message


def test_too_long_error_or_truncate(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    df = pl.read_csv(toy_data["train"])
    df = pl.concat([df, pl.DataFrame({"text": ["word " * 200], "label": ["pos"]})])
    df.write_csv(tmp_path / "long.csv")
    data = {**toy_data, "train": tmp_path / "long.csv"}
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, data, data={"too_long": "error"})
    assert checks(out)["too_long"].rows == [15]
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, data)  # default: truncate, with a warning
    assert out.ok and checks(out, "warning")["too_long"].rows == [15]


def test_split_when_no_eval_file_is_stratified(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    data = {"train": toy_data["train"]}
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, data, data={"eval_fraction": 0.3})
    assert out.ok
    assert set(out.eval["label"].to_list()) == {"pos", "neg"}
    assert out.train.height + out.eval.height == 14
    assert not set(out.train["_row"].to_list()) & set(out.eval["_row"].to_list())


def test_all_errors_reported_at_once(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    rows = [("good", "pos"), ("good", "pos"), ("x", "zzz"), ("bad", "neg"), ("worse", "neg")]
    ev = write_csv(tmp_path / "e.csv", [("bad", "neg"), ("fine", "pos")])
    out = run_checks(
        tmp_path, tiny_model_dir, tiny_tokenizer, {"train": write_csv(tmp_path / "a.csv", rows), "eval": ev}
    )
    assert {"duplicates", "unknown_labels", "leakage"} <= set(checks(out))
    assert out.summary().startswith("Data validation failed with")
