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
    assert "data.duplicates: drop" in checks(out)["conflicting_labels"].message
    # data.duplicates: drop drops every row of a text with several labels (which label is right is not known)
    files = {**toy_data, "train": tmp_path / "c.csv"}
    dropped = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, files, data={"duplicates": "drop"})
    assert dropped.ok and checks(dropped, "warning")["conflicting_labels"].rows == [1, 15]
    assert dropped.train.height == 13 and df["text"][0] not in dropped.train.get_column("text").to_list()


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
    assert "'neg' (1)" in checks(out)["min_examples_per_label"].message  # quoted: 'neg ' and neg differ


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


def _intents(path, counts: dict[str, int], start: int = 0):
    rows = [f"{lab} request number {start + i}" for lab, n in counts.items() for i in range(n)]
    labels = [lab for lab, n in counts.items() for _ in range(n)]
    return write_csv(path, list(zip(rows, labels)))


def test_labels_are_inferred_from_train_with_counts_and_answer_words(tmp_path, tiny_model_dir, tiny_tokenizer):
    counts = {"card_lost": 5, "refund_request": 3, "10": 2, "2": 2}
    files = {
        "train": _intents(tmp_path / "train.csv", counts),
        "eval": _intents(tmp_path / "eval.csv", {"card_lost": 2, "2": 1}, start=100),
    }
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, files, data={"labels": None})
    assert out.ok, out.summary()
    # natural order; underscores read as spaces in the answer words
    inferred = {"2": "2", "10": "10", "card_lost": "card lost", "refund_request": "refund request"}
    assert out.stats["labels_inferred"] == inferred
    assert out.stats["class_balance"]["train"] == {"2": 2, "10": 2, "card_lost": 5, "refund_request": 3}
    md, _ = write_report(out, tmp_path / "rep")
    text = md.read_text()
    assert "4 labels below were found in train" in text and "| card_lost | card lost | 5 | 2 |" in text


def test_an_eval_label_never_seen_in_train_is_an_error_naming_its_rows(tmp_path, tiny_model_dir, tiny_tokenizer):
    files = {
        "train": _intents(tmp_path / "train.csv", {"billing": 3, "refund": 3}),
        "eval": _intents(tmp_path / "eval.csv", {"billing": 1, "cancel": 2}, start=100),
    }
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, files, data={"labels": None})
    issue = checks(out)["unknown_labels"]
    assert issue.split == "eval" and issue.rows == [2, 3]
    assert "cancel" in issue.message and "never seen in train" in issue.message
    # one label only: not a classification task; the fix is named
    one = {"train": _intents(tmp_path / "one.csv", {"billing": 4}), "eval": files["eval"]}
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, one, data={"labels": None})
    message = checks(out)["labels"].message
    assert "1 distinct label" in message and "declare data.labels" in message


def test_max_rows_sampling_is_stratified_and_keeps_every_label(tmp_path, tiny_model_dir, tiny_tokenizer):
    # 30 intents, 2..61 rows each (the shape of a many-intent support set); a uniform sample of 60 rows of these
    # 960 would leave several intents with 0 or 1 row
    counts = {f"intent_{i:02d}": 2 + 2 * i for i in range(30)}
    files = {
        "train": _intents(tmp_path / "train.csv", counts),
        "eval": _intents(tmp_path / "eval.csv", {k: 3 for k in counts}, start=1000),
    }
    data = {"labels": None, "max_train_rows": 240, "max_eval_rows": 30, "min_examples_per_label": 2}
    # 30 labels listed in the prompt: the default test budget (64 tokens) would leave no room for the input
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, files, data=data, method={"max_length": 256})
    assert out.ok, out.summary()
    train = out.stats["class_balance"]["train"]
    assert sum(train.values()) == 240 and min(train.values()) >= 2  # every label, at least its floor
    assert train["intent_29"] > 3 * train["intent_03"]  # proportions kept (60 vs 8 rows in the source)
    assert set(out.stats["class_balance"]["eval"].values()) == {1}  # 30 of 90 eval rows: one per label
    assert out.stats["sampling"] == "stratified by label"


def test_hugging_face_dataset_folders_and_parquet_folders_are_data_sources(tmp_path, tiny_model_dir, tiny_tokenizer):
    import datasets

    from tests.conftest import TOPICS

    rows = [(t, lab) for lab, texts in TOPICS.items() for t in texts]
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["neg", "pos"]),
            "tags": [datasets.Value("string")],
        }
    )

    def ds(part):
        return datasets.Dataset.from_dict(
            {"text": [t for t, _ in part], "label": [lab for _, lab in part], "tags": [["a", "b"]] * len(part)},
            features=features,
        )

    train, evl = rows[::2] + rows[1::4], rows[3::4]
    datasets.DatasetDict({"train": ds(train), "test": ds(evl)}).save_to_disk(str(tmp_path / "hf"))
    # the DatasetDict root: which split? the message says and names a split folder
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {"train": tmp_path / "hf", "eval": tmp_path / "hf"})
    assert "splits train, test" in checks(out)["readable"].message and str(tmp_path / "hf" / "train") in out.summary()
    # a split's folder: class labels read as their names, a list column (unused) does not break the read
    files = {"train": tmp_path / "hf" / "train", "eval": tmp_path / "hf" / "test"}
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, files)
    assert out.ok, out.summary()
    assert out.train.height == len(train) and set(out.train.get_column("label")) == {"neg", "pos"}
    # a folder of Parquet shards (e.g. a hub dataset's data/ folder) is one table
    shards = tmp_path / "pq"
    shards.mkdir()
    for i in range(3):
        ds(train[i::3]).to_parquet(str(shards / f"train-0000{i}-of-00003.parquet"))
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {"train": shards, "eval": files["eval"]})
    assert out.ok and out.train.height == len(train)
    # a class-label value without a name is shown as such (not as a missing label)
    from tunegate.formats.parquet import class_label_names

    named = class_label_names(
        pl.DataFrame({"label": [0, 1, 7]}), {"label": {"_type": "ClassLabel", "names": ["n", "p"]}}
    )
    assert named.get_column("label").to_list() == ["n", "p", "<ClassLabel value 7: not one of the 2 names>"]
    # a truncated Arrow shard is named, with what it usually means
    (shard,) = files["eval"].glob("*.arrow")
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, files)
    assert not out.ok and "Arrow shard" in out.summary() and "truncated or damaged" in out.summary(), out.summary()


def test_label_prefixed_lines_with_an_encoding_and_a_label_pattern(tmp_path, tiny_model_dir, tiny_tokenizer):
    # TREC's layout: "COARSE:fine question", no header, Latin-1; a blank line is skipped, row numbers are lines
    lines = [f"{c}:{f} question {i} about caf\xe9 ?" for i, (c, f) in enumerate([("HUM", "ind"), ("LOC", "city")] * 5)]
    train = tmp_path / "train.label"
    train.write_bytes(("\n".join(lines[:6]) + "\n\n" + "\n".join(lines[6:]) + "\n").encode("latin-1"))
    evl = tmp_path / "eval.label"
    evl.write_bytes("HUM:ind who is it ?\nLOC:city where is it ?\nbroken line without a colon\n".encode("latin-1"))
    data = {"labels": None, "columns": ["label", "text"], "encoding": "latin-1", "label_pattern": "^([A-Z]+):"}
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {"train": train, "eval": evl}, data=data)
    assert out.stats["labels_inferred"] == {"HUM": "HUM", "LOC": "LOC"}
    issue = checks(out)["null_values"]
    assert issue.split == "eval" and issue.rows == [3] and "do not match data.label_pattern" in issue.message
    # without the encoding: the line that does not decode is named, with the fix
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {"train": train, "eval": evl}, data={"labels": None})
    message = checks(out)["readable"].message
    assert "line 1 is not valid utf-8" in message and "data.encoding" in message
    # the fine labels, decoded text, and line numbers past the blank line
    fine = {"labels": None, "columns": ["label", "text"], "encoding": "latin-1"}
    good = tmp_path / "good.label"
    good.write_bytes("HUM:ind who is it ?\nLOC:city where is it ?\n".encode("latin-1"))
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {"train": train, "eval": good}, data=fine)
    assert out.ok, out.summary()
    assert out.train.get_column("_row").to_list()[-1] == 11 and "café" in out.train.get_column("text")[0]
    assert set(out.stats["labels_inferred"]) == {"HUM:ind", "LOC:city"}


def test_a_selection_split_from_train_or_a_file_is_kept_apart(tmp_path, tiny_model_dir, tiny_tokenizer):
    counts = {f"intent_{i}": 10 for i in range(4)}
    files = {
        "train": _intents(tmp_path / "train.csv", counts),
        "eval": _intents(tmp_path / "eval.csv", {k: 3 for k in counts}, start=1000),
    }
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, files, data={"labels": None, "dev_fraction": 0.25})
    assert out.ok, out.summary()
    assert out.dev.height == 8 and out.train.height == 32  # stratified: 2 of each label's 10 rows (rank <= 25%)
    assert set(out.dev.get_column("label")) == set(counts)
    assert not set(out.dev.get_column("text")) & set(out.train.get_column("text"))
    # a dev file: its rows that also occur in eval are dropped from dev, with a warning naming them
    dev = write_csv(
        tmp_path / "dev.csv",
        [("intent_0 request number 1000", "intent_0"), ("intent_0 request number 1001", "intent_0")]
        + [("a new question", "intent_1"), ("another new one", "intent_2")],
    )
    out = run_checks(
        tmp_path, tiny_model_dir, tiny_tokenizer, {**files, "dev": dev}, data={"labels": None, "dev": str(dev)}
    )
    warning = checks(out, "warning")["dev_overlap"]
    assert warning.rows == [1, 2] and out.dev.height == 2


def test_train_and_eval_of_different_lengths_are_flagged_with_advice_for_the_selection_split(
    tmp_path, tiny_model_dir, tiny_tokenizer
):
    """SST-2's shape: short phrases in train, whole sentences in eval. The run goes on (a warning); with a
    selection split drawn from train the advice is data.dev; splits of similar length raise nothing."""
    phrase = "{} film number {}"
    sentence = "the {} film number {} was reviewed at length by a critic who wrote a long paragraph about its plot"
    train = write_csv(
        tmp_path / "train.csv",
        [(phrase.format(w, i), lab) for w, lab in (("good", "pos"), ("bad", "neg")) for i in range(20)],
    )
    long_eval = write_csv(
        tmp_path / "eval.csv",
        [(sentence.format(w, 100 + i), lab) for i in range(12) for w, lab in (("good", "pos"), ("bad", "neg"))],
    )
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {"train": train, "eval": long_eval})
    assert out.ok, out.summary()
    shift = checks(out, "warning")["length_shift"]
    assert "differ in length" in shift.message and "same source" in shift.message
    out = run_checks(
        tmp_path, tiny_model_dir, tiny_tokenizer, {"train": train, "eval": long_eval}, data={"dev_fraction": 0.25}
    )
    assert "give data.dev rows drawn like eval" in checks(out, "warning")["length_shift"].message
    short_eval = write_csv(
        tmp_path / "eval2.csv",
        [(phrase.format(w, 100 + i), lab) for i in range(12) for w, lab in (("good", "pos"), ("bad", "neg"))],
    )
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {"train": train, "eval": short_eval})
    assert "length_shift" not in checks(out, "warning")


def test_streamed_batches_find_what_one_batch_finds(tmp_path, tiny_model_dir, tiny_tokenizer, monkeypatch):
    """Train is validated, counted and hashed in batches (a big file is never held whole): with batches of 4 rows
    the problems found across batch boundaries, the rows kept and the data hash are those of one batch."""
    from tunegate import data
    from tunegate.validation import frames

    rows = [(f"{w} review number {i}", "pos" if i % 2 else "neg") for i, w in enumerate(["good", "bad"] * 12)]
    rows[5] = rows[1]  # a repeat in another batch
    rows[9] = ("", "pos")  # empty text
    rows[14] = (rows[3][0], "neg" if rows[3][1] == "pos" else "pos")  # the same text, another label
    rows[17] = ("odd one", "maybe")  # unknown label
    rows[22] = (rows[2][0] + " again", None)  # missing label
    train = write_csv(tmp_path / "train.csv", rows)
    evl = write_csv(tmp_path / "eval.csv", [(rows[7][0], rows[7][1]), ("fresh text", "pos"), ("new one", "neg")])
    cfg = load_config(make_config(tmp_path, tiny_model_dir, {"train": train, "eval": evl}))

    def found(out):
        return {(i.check, tuple(i.rows)) for i in out.issues}

    whole = validate(cfg, tiny_tokenizer)
    sizes = []
    batches = data.Table.batches

    def counted(self, query, size):
        for b in batches(self, query, size):
            sizes.append(b.height)
            yield b

    monkeypatch.setattr(frames, "TOKENIZE_BATCH", 4)
    monkeypatch.setattr(data.Table, "batches", counted)
    streamed = validate(cfg, tiny_tokenizer)
    assert len(sizes) > 3 and sum(sizes) == 24
    assert found(streamed) == found(whole)
    assert ("duplicates", (6,)) in found(whole) and ("empty_text", (10,)) in found(whole)
    assert ("conflicting_labels", (4, 15)) in found(whole) and ("unknown_labels", (18,)) in found(whole)
    assert ("null_values", (23,)) in found(whole)
    assert streamed.stats["tokens"] == whole.stats["tokens"]

    # with the errors resolved (drop repeats and leaks, fix the bad rows) the kept rows and their hash agree too
    rows[9], rows[14], rows[17], rows[22] = (
        ("now filled", "pos"),
        ("distinct", "neg"),
        ("odd one", "pos"),
        ("x y", "neg"),
    )
    write_csv(train, rows)
    cfg = load_config(
        make_config(
            tmp_path,
            tiny_model_dir,
            {"train": train, "eval": evl},
            data={
                "train": str(train),
                "eval": str(evl),
                "labels": ["pos", "neg"],
                "duplicates": "drop",
                "leakage": "drop",
            },
        )
    )
    streamed = validate(cfg, tiny_tokenizer)
    monkeypatch.setattr(frames, "TOKENIZE_BATCH", 10_000)
    whole = validate(cfg, tiny_tokenizer)
    assert streamed.ok and whole.ok, whole.summary()
    assert streamed.train.equals(whole.train) and whole.train.height == 23 and whole.eval.height == 2
    assert streamed.stats["data_hash"] == whole.stats["data_hash"]
    # the streamed hash is the one of the whole frames, hashed at once
    assert whole.stats["data_hash"] == data.frame_hash(whole.train, whole.eval, columns=("text", "label"))


def test_overlap_checks_ignore_case_spacing_and_punctuation(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    """Rows that differ from another only in case, spacing or punctuation count as the same text: a duplicate, a
    conflicting label, a leak into eval."""
    train = pl.read_csv(toy_data["train"])
    first = train["text"][0]
    near = first.upper().replace(" ", "   ") + " !!"
    pl.concat([train, pl.DataFrame({"text": [near], "label": [train["label"][0]]})]).write_csv(tmp_path / "d.csv")
    pl.concat(
        [train, pl.DataFrame({"text": [near], "label": ["neg" if train["label"][0] == "pos" else "pos"]})]
    ).write_csv(tmp_path / "c.csv")
    ev = pl.concat([pl.read_csv(toy_data["eval"]), pl.DataFrame({"text": [f"  {first.title()}."], "label": ["pos"]})])
    ev.write_csv(tmp_path / "leak.csv")
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {**toy_data, "train": tmp_path / "d.csv"})
    assert checks(out)["duplicates"].rows == [15]
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {**toy_data, "train": tmp_path / "c.csv"})
    assert checks(out)["conflicting_labels"].rows == [1, 15]
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {**toy_data, "eval": tmp_path / "leak.csv"})
    assert (
        checks(out)["leakage"].rows == [7] and "case, spacing and punctuation ignored" in checks(out)["leakage"].message
    )


def test_numbers_and_json_values_in_the_text_column_are_named(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    import json

    rows = [{"text": t, "label": y} for t, y in pl.read_csv(toy_data["train"]).iter_rows()]
    rows += [
        {"text": {"body": "a nested object"}, "label": "pos"},
        {"text": 42, "label": "neg"},
        {"text": ["a", "list"], "label": "pos"},
        {"text": "a real text about 42 things", "label": "neg"},
    ]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {**toy_data, "train": tmp_path / "t.jsonl"})
    issue = checks(out)["not_text"]
    assert issue.rows == [15, 16, 17] and "data.text_column" in issue.message


def test_a_few_texts_that_are_only_a_number_are_kept_with_a_warning(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data):
    """SST-2 holds whole phrases such as '2002': a few numeric texts among texts are texts (kept, named in a
    warning); a numeric column read as the text (most rows) stays an error (the corpus' jsonl-number-text)."""
    rows = list(pl.read_csv(toy_data["train"]).iter_rows()) + [("2002", "pos"), ("1.5", "neg")]
    pl.DataFrame(rows, schema=["text", "label"], orient="row").write_csv(tmp_path / "t.csv")
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, {**toy_data, "train": tmp_path / "t.csv"})
    issue = checks(out, "warning")["numeric_text"]
    assert issue.severity == "warning" and issue.rows == [15, 16] and "'2002'" in issue.message
    assert "not_text" not in checks(out) and not [i for i in out.issues if i.severity == "error"]


def test_max_length_beyond_the_model_context_or_below_the_prompt_is_an_error(
    tmp_path, tiny_model_dir, tiny_tokenizer, toy_data
):
    from tunegate.modeling import context_length

    context = context_length(str(tiny_model_dir))
    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, method={"max_length": 1_000_000}))
    out = validate(cfg, tiny_tokenizer, context)
    assert f"exceeds the model's context of {context} tokens" in checks(out)["max_length"].message
    labels = [f"intent_number_{i}" for i in range(120)]
    cfg = load_config(
        make_config(tmp_path, tiny_model_dir, toy_data, data={"labels": labels}, method={"max_length": 256})
    )
    out = validate(cfg, tiny_tokenizer, context)
    msg = checks(out)["max_length"].message
    assert "the 120 labels" in msg and "no row's input would fit" in msg and "raise method.max_length" in msg


def test_the_checks_run_in_the_order_of_their_list_and_the_report_lists_them(tmp_path, tiny_model_dir, tiny_tokenizer):
    """validation.md names every check that ran with what it read; a check that makes the rest meaningless (an
    unreadable file) stops the list there."""
    from tests.conftest import write_csv
    from tunegate.validation import CHECKS

    good = write_csv(tmp_path / "t.csv", [(f"text {i}", "pos" if i % 2 else "neg") for i in range(12)])
    cfg = load_config(make_config(tmp_path, tiny_model_dir, {"train": good}))
    out = validate(cfg, tiny_tokenizer)
    assert out.ok, out.summary()
    assert [c["check"] for c in out.stats["checks"]] == [c.name for c in CHECKS]
    md, _ = write_report(out, tmp_path / "report")
    text = md.read_text()
    assert "## Checks, in order" in text and "| leakage | eval texts against train texts | - |" in text
    bad = load_config(make_config(tmp_path, tiny_model_dir, {"train": tmp_path / "missing.csv"}))
    stopped = validate(bad, tiny_tokenizer)
    assert not stopped.ok and [c["check"] for c in stopped.stats["checks"]] == ["readable"]
    assert stopped.stats["checks"][0]["issues"] == 1


def test_max_length_auto_is_the_longest_row_within_the_context_and_the_label_list_cost_is_named(
    tmp_path, tiny_model_dir, tiny_tokenizer, toy_data
):
    """'auto' (the default): the longest row's prompt + answer, at least 256, at most the model's context; the
    report says what was chosen and the flows apply it. A long label list: its tokens per request are named, with
    prompt.list_labels: false, which drops it from the instruction."""
    from tunegate.validation import render_markdown, resolved_settings

    AUTO = {"max_length": "auto"}

    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, method=AUTO))
    assert cfg.method.max_length == "auto"
    out = validate(cfg, tiny_tokenizer, 1024)
    ml = out.stats["max_length"]
    longest = max(out.stats["tokens"][s]["max"] for s in ("train", "eval"))
    assert out.ok and ml["longest_row"] == longest < 256 and ml["chosen"] == ml["auto"] == 256, ml
    assert "the floor of 256" in ml["why"] and out.stats["tokens"]["train"]["limit"] == 256
    assert "`method.max_length: auto` -> **256** tokens" in render_markdown(out)
    resolved = resolved_settings(cfg, out)
    assert resolved["method"] == {"max_length": 256} and cfg.with_resolved(resolved).method.max_length == 256
    # a context shorter than the floor caps it; rows beyond it follow data.too_long (error here)
    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, data={"too_long": "error"}, method=AUTO))
    out = validate(cfg, tiny_tokenizer, longest - 1)
    assert out.stats["max_length"]["chosen"] == longest - 1 and "model's context" in out.stats["max_length"]["why"]
    assert "exceed the model's context of" in checks(out)["too_long"].message
    # long rows: the longest one decides
    rows = [("word " * 300 + t, y) for t, y in [("a", "pos"), ("b", "neg")]] + [
        (f"short {i}", "pos" if i % 2 else "neg") for i in range(12)
    ]
    files = {"train": write_csv(tmp_path / "long.csv", rows), "eval": toy_data["eval"]}
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, files, method=AUTO)
    ml = out.stats["max_length"]
    assert out.ok and ml["chosen"] == ml["longest_row"] == out.stats["tokens"]["train"]["max"] > 300
    # a configured length stays, and auto's choice is still recorded (a compare entry may be 'auto')
    out = run_checks(tmp_path, tiny_model_dir, tiny_tokenizer, toy_data, method={"max_length": 100})
    assert out.stats["max_length"]["chosen"] == 100 and out.stats["max_length"]["auto"] == 256
    # 120 labels: the list is most of each prompt, named with its cost and the option that drops it
    labels = [f"intent_number_{i}" for i in range(120)]
    many = {
        "train": write_csv(
            tmp_path / "many.csv", [(f"request {i} {w}", lab) for i, lab in enumerate(labels) for w in "ab"]
        ),
        "eval": write_csv(tmp_path / "many_eval.csv", [(f"request {i} c", lab) for i, lab in enumerate(labels)]),
    }
    cfg = load_config(make_config(tmp_path, tiny_model_dir, many, data={"labels": labels}, method=AUTO))
    out = validate(cfg, tiny_tokenizer, 1024)
    warn = checks(out, "warning")["label_list"]
    cost = out.stats["label_list_tokens"]
    assert cost > 500 and f"costs {cost} tokens per request" in warn.message
    assert "prompt.list_labels: false" in warn.message and out.stats["label_list_share"] > 0.5, out.summary()
    unlisted = cfg.model_copy(update={"prompt": cfg.prompt.model_copy(update={"list_labels": False})})
    out2 = validate(unlisted, tiny_tokenizer, 1024)
    assert "label_list" not in checks(out2, "warning") and "label_list_tokens" not in out2.stats
    assert out2.stats["tokens"]["train"]["max"] == out.stats["tokens"]["train"]["max"] - cost
