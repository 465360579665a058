"""A corpus of hostile inputs: each gets a non-zero exit, one clear message naming what is wrong and where, no
traceback, and nothing in the registry.

The cases are generated here (files written into a fresh folder per case) and run through the real CLI entry
point (``tunegate.cli.main``) in-process: data files and configs through ``tunegate validate`` (the same checks
``tunegate run`` starts with), names and arguments through the commands that take them. The HTTP bodies of the
same corpus are sent to a real server in ``tests/integration/test_serve.py::test_bad_requests_get_a_json_4xx``.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl
import pytest
import yaml

from tests.conftest import TOPICS
from tunegate.hardware import usable_cores

GOOD_TRAIN = [(t, lab) for lab, texts in TOPICS.items() for t in texts[:7]]
GOOD_EVAL = [(t, lab) for lab, texts in TOPICS.items() for t in texts[7:]]


def csv_text(rows, header="text,label") -> str:
    return header + "\n" + "".join(f'"{t}",{y}\n' for t, y in rows)


def jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def parquet_bytes(df: pl.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    df.write_parquet(buf)
    return buf.getvalue()


@dataclass
class Case:
    id: str
    kind: str  # data | config | name | cli
    expect: list[str]  # substrings of the message (case-insensitive)
    files: dict[str, str | bytes] = field(default_factory=dict)  # written into the case folder
    config: dict = field(default_factory=dict)  # merged into the base config (None deletes a key)
    raw_config: str | bytes | None = None  # the config file's bytes instead
    argv: list[str] | None = None  # default: validate {cfg}
    rc: int | None = None  # expected exit code (default: any non-zero)
    setup: Callable[[Path], object] | None = None


def train_file(name: str, content: str | bytes, **config) -> dict:
    return {"files": {name: content}, "config": {"data": {"train": name, **config}}}


def _damaged_model_config(d: Path) -> None:
    """The case's model: a copy of the tiny model whose config.json is cut short."""
    import shutil

    cfg = yaml.safe_load((d / "config.yaml").read_text())
    shutil.copytree(cfg["model"], d / "model")
    (d / "model" / "config.json").write_text('{"model_type": "llama",')
    cfg["model"] = str(d / "model")
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))


def _truncated_gguf(d: Path) -> None:
    """The case's model: the first 4 KB of the real SmolLM2 GGUF (a download cut off)."""
    from tunegate.packaged_models import _smollm2_gguf

    gguf, _ = _smollm2_gguf()
    with open(gguf, "rb") as f:
        (d / "cut.gguf").write_bytes(f.read(4096))


def hf_parquet_bytes(rows, names: list[str]) -> bytes:
    """A Parquet file as Hugging Face ``datasets`` writes it: integer labels, the ClassLabel names in its metadata."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    features = {"text": {"dtype": "string", "_type": "Value"}, "label": {"names": names, "_type": "ClassLabel"}}
    table = pa.table({"text": [t for t, _ in rows], "label": [y for _, y in rows]})
    table = table.replace_schema_metadata({b"huggingface": json.dumps({"info": {"features": features}}).encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _truncated_arrow(d: Path) -> None:
    """The case's train data: a Hugging Face dataset folder whose Arrow shard is cut in half."""
    import datasets

    rows = GOOD_TRAIN
    ds = datasets.Dataset.from_dict({"text": [t for t, _ in rows], "label": [y for _, y in rows]})
    ds.save_to_disk(str(d / "hf_train"))
    (shard,) = (d / "hf_train").glob("*.arrow")
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])


CASES = [
    # ---- data files (tunegate validate: exit 1, the file and its rows named)
    Case(
        "csv-ragged-row",
        "data",
        ["train.csv", "line 4", "3 fields, the header 2"],
        **train_file(
            "train.csv", csv_text(GOOD_TRAIN[:2]) + '"extra",pos,surplus\n' + csv_text(GOOD_TRAIN[2:], header="")[1:]
        ),
    ),
    Case(
        "csv-semicolons",
        "data",
        ["train.csv", "text", "label", "data.text_column"],
        **train_file("train.csv", "text;label\n" + "".join(f"{t};{y}\n" for t, y in GOOD_TRAIN)),
    ),
    Case(
        "csv-utf16",
        "data",
        ["train.csv", "utf-16", "data.encoding"],
        **train_file("train.csv", csv_text(GOOD_TRAIN).encode("utf-16")),
    ),
    Case(
        "csv-etc-passwd",
        "data",
        ["train.csv", "text", "label"],
        **train_file("train.csv", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"),
    ),
    Case(
        "csv-bom-then-bad-row",
        "data",
        ["train", "empty", "rows 2"],
        **train_file("train.csv", "\ufeff" + csv_text(GOOD_TRAIN[:1] + [("  ", "pos")] + GOOD_TRAIN[1:])),
    ),
    Case(
        "csv-nul-bytes",
        "data",
        ["train.csv", "nul"],
        **train_file(
            "train.csv", csv_text([(GOOD_TRAIN[0][0][:5] + "\x00" + GOOD_TRAIN[0][0][5:], "pos"), *GOOD_TRAIN[1:]])
        ),
    ),
    Case(
        "csv-huge-row",
        "data",
        ["max_length", "rows 15"],
        **train_file("train.csv", csv_text(GOOD_TRAIN + [("word " * 200_000, "pos")]), too_long="error"),
    ),
    Case(
        "csv-duplicate-columns",
        "data",
        ["train.csv", "text", "twice"],
        **train_file("train.csv", "text,text,label\n" + "".join(f'"{t}","{t}",{y}\n' for t, y in GOOD_TRAIN)),
    ),
    Case(
        "csv-unclosed-quote",  # named the line where parsing failed, not where the quote opened
        "data",
        ["train.csv", "line 5", "quote"],
        **train_file(
            "train.csv", csv_text(GOOD_TRAIN[:3]) + '"never closed,pos\n' + csv_text(GOOD_TRAIN[3:], header="")[1:]
        ),
    ),
    Case(
        "csv-latin1",
        "data",
        ["train.csv", "utf-8", "data.encoding"],
        **train_file(
            "train.csv", csv_text(GOOD_TRAIN[:3] + [("café crème", "pos")] + GOOD_TRAIN[3:]).encode("latin-1")
        ),
    ),
    Case("csv-binary-gzip", "data", ["train.csv"], **train_file("train.csv", gzip.compress(b"\x00\x01" * 500))),
    Case("csv-header-only", "data", ["train.csv", "no rows"], **train_file("train.csv", "text,label\n")),
    Case("csv-empty", "data", ["train.csv", "empty"], **train_file("train.csv", "")),
    Case(
        "csv-missing-label-column",
        "data",
        ["label", "train.csv"],
        **train_file("train.csv", "text\n" + "".join(f'"{t}"\n' for t, _ in GOOD_TRAIN)),
    ),
    Case(
        "csv-all-texts-empty",
        "data",
        ["empty", "rows"],
        **train_file("train.csv", csv_text([("   ", y) for _, y in GOOD_TRAIN])),
    ),
    Case(
        "csv-unknown-labels",
        "data",
        ["unknown_labels", "maybe"],
        **train_file("train.csv", csv_text(GOOD_TRAIN + [("a text with a new label", "maybe")])),
    ),
    Case(
        "csv-one-row-per-label",
        "data",
        ["min_examples_per_label"],
        **train_file("train.csv", csv_text([GOOD_TRAIN[0], GOOD_TRAIN[-1]])),
    ),
    Case(
        "csv-conflicting-labels",
        "data",
        ["conflicting_labels"],
        **train_file("train.csv", csv_text(GOOD_TRAIN + [(GOOD_TRAIN[0][0].upper() + "!", "neg")])),
    ),
    Case("csv-missing-file", "data", ["nope.csv", "not found"], config={"data": {"train": "nope.csv"}}),
    Case(
        "csv-train-is-empty-folder",
        "data",
        ["folder", "no"],
        files={"empty/.keep": ""},
        config={"data": {"train": "empty"}},
    ),
    Case("csv-train-is-dev-null", "data", ["/dev/null"], config={"data": {"train": "/dev/null"}}),
    Case(
        "jsonl-not-json-line",
        "data",
        ["train.jsonl", "line 3"],
        **train_file(
            "train.jsonl",
            jsonl([{"text": t, "label": y} for t, y in GOOD_TRAIN[:2]])
            + "{oops\n"
            + jsonl([{"text": t, "label": y} for t, y in GOOD_TRAIN[2:]]),
        ),
    ),
    Case(
        "jsonl-array-line",
        "data",
        ["train.jsonl", "line 2"],
        **train_file(
            "train.jsonl",
            jsonl(
                [{"text": GOOD_TRAIN[0][0], "label": "pos"}, ["not", "an", "object"]]
                + [{"text": t, "label": y} for t, y in GOOD_TRAIN[1:]]
            ),
        ),
    ),
    Case("jsonl-empty", "data", ["train.jsonl", "empty"], **train_file("train.jsonl", "")),
    Case(
        "jsonl-number-text",  # a numeric field read as the text (one number among texts is kept with a warning)
        "data",
        ["not_text", "data.text_column"],
        **train_file("train.jsonl", jsonl([{"text": 1000 + i, "label": y} for i, (_, y) in enumerate(GOOD_TRAIN)])),
    ),
    Case(
        "jsonl-object-text",
        "data",
        ["not_text", "rows 15"],
        **train_file(
            "train.jsonl",
            jsonl([{"text": t, "label": y} for t, y in GOOD_TRAIN] + [{"text": {"a": "b"}, "label": "pos"}]),
        ),
    ),
    Case(
        "jsonl-list-text",
        "data",
        ["not_text"],
        **train_file(
            "train.jsonl", jsonl([{"text": t, "label": y} for t, y in GOOD_TRAIN] + [{"text": ["a"], "label": "neg"}])
        ),
    ),
    Case(
        "jsonl-mixed-label-types",
        "data",
        ["unknown_labels", "1"],
        **train_file(
            "train.jsonl",
            jsonl([{"text": t, "label": y} for t, y in GOOD_TRAIN] + [{"text": "a number label", "label": 1}]),
        ),
    ),
    Case(
        "jsonl-list-column-unused",
        "data",
        ["unknown_labels"],
        **train_file(
            "train.jsonl",
            jsonl(
                [{"text": t, "label": y, "tags": ["x", "y"]} for t, y in GOOD_TRAIN]
                + [{"text": "still validated", "label": "other", "tags": []}]
            ),
        ),
    ),
    Case(
        "parquet-truncated",
        "data",
        ["train.parquet"],
        **train_file(
            "train.parquet", parquet_bytes(pl.DataFrame(GOOD_TRAIN, schema=["text", "label"], orient="row"))[:300]
        ),
    ),
    Case(
        "parquet-list-text",
        "data",
        ["not_text"],
        **train_file(
            "train.parquet",
            parquet_bytes(pl.DataFrame({"text": [[t] for t, _ in GOOD_TRAIN], "label": [y for _, y in GOOD_TRAIN]})),
        ),
    ),
    Case(
        "parquet-int-text",
        "data",
        ["not_text"],
        **train_file(
            "train.parquet",
            parquet_bytes(pl.DataFrame({"text": list(range(len(GOOD_TRAIN))), "label": [y for _, y in GOOD_TRAIN]})),
        ),
    ),
    Case(
        "parquet-not-parquet",
        "data",
        ["train.parquet", "parquet"],
        **train_file("train.parquet", "text,label\na,pos\n"),
    ),
    Case(
        "eval-leak-near-duplicate",
        "data",
        ["leakage", "eval"],
        files={"eval.csv": csv_text(GOOD_EVAL + [(GOOD_TRAIN[0][0].lower() + " .", GOOD_TRAIN[0][1])])},
        config={"data": {"eval": "eval.csv"}},
    ),
    Case(
        "messages-bad-role",
        "data",
        ["line 1", "role", "customer"],
        files={
            "chat.jsonl": jsonl(
                [{"messages": [{"role": "customer", "content": "hi"}, {"role": "assistant", "content": "hello"}]}] * 20
            )
        },
        config={
            "task": "generation",
            "data": {"train": "chat.jsonl", "eval": None, "labels": None, "format": "messages"},
        },
    ),
    Case(
        "messages-no-assistant",
        "data",
        ["no assistant turn"],
        files={"chat.jsonl": jsonl([{"messages": [{"role": "user", "content": f"hi {i}"}]} for i in range(20)])},
        config={
            "task": "generation",
            "data": {"train": "chat.jsonl", "eval": None, "labels": None, "format": "messages"},
        },
    ),
    Case(  # was reported as a missing label
        "hf-class-label-out-of-range",
        "data",
        ["train.parquet", "ClassLabel value 7", "not one of the 2 names", "row"],
        **train_file(
            "train.parquet",
            hf_parquet_bytes([(t, i % 2) for i, (t, _) in enumerate(GOOD_TRAIN[:-1])] + [("x", 7)], ["pos", "neg"]),
        ),
    ),  # fmt: skip
    Case(  # was "failed to fill whole buffer"
        "hf-arrow-shard-truncated",
        "data",
        ["hf_train", "Arrow shard", "truncated or damaged"],
        config={"data": {"train": "hf_train"}},
        setup=_truncated_arrow,
    ),
    Case(  # passed validation; the learning curve failed after the run had trained
        "forecast-fractions-lose-a-label",
        "data",
        ["forecast.fractions", "1 of the 2 labels", "at least"],
        config={"forecast": {"after_reject": True, "fractions": [0.05, 0.5, 1.0]}},
    ),
    Case(
        "max-length-beyond-context",
        "data",
        ["exceeds the model's context"],
        config={"method": {"max_length": 1_000_000}},
    ),
    Case(
        "prompt-longer-than-max-length",
        "data",
        ["no row's input would fit", "prompt.list_labels: false"],
        config={"data": {"labels": [f"intent_{i}" for i in range(120)]}, "method": {"max_length": 128}},
    ),
    # ---- configs (exit 2, the key and the fix named)
    Case(
        "yaml-syntax", "config", ["config.yaml", "line"], raw_config="task: classification\ndata:\n  train: [a\n", rc=2
    ),
    Case(
        "yaml-tab-indent",
        "config",
        ["config.yaml", "line"],
        raw_config="task: classification\ndata:\n\ttrain: a\n",
        rc=2,
    ),
    Case(
        "yaml-duplicate-key",
        "config",
        ["method", "twice"],
        raw_config=None,
        rc=2,
        setup=lambda d: (d / "config.yaml").write_text((d / "config.yaml").read_text() + "method:\n  name: qlora\n"),
    ),
    Case(
        "yaml-anchor-bomb",
        "config",
        ["alias", "expand"],
        rc=2,
        raw_config="a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for p, c in zip("abcdefgh", "bcdefghi")
        ),
    ),
    Case(
        "yaml-latin1",
        "config",
        ["not utf-8", "line"],
        raw_config="task: classification\n# caf\xe9\n".encode("latin-1"),
        rc=2,
    ),
    Case("yaml-deep-nesting", "config", ["config.yaml"], raw_config="a: " + "[" * 5000 + "]" * 5000 + "\n", rc=2),
    Case("yaml-a-list", "config", ["mapping"], raw_config="- task\n- model\n", rc=2),
    Case("yaml-empty", "config", ["empty"], raw_config="", rc=2),
    Case("config-is-a-folder", "config", ["folder"], argv=["validate", "{dir}"], rc=2),
    Case("config-missing", "config", ["nope.yaml", "not found"], argv=["validate", "{dir}/nope.yaml"], rc=2),
    Case("epochs-a-string", "config", ["method.epochs", "integer"], config={"method": {"epochs": "three"}}, rc=2),
    Case(
        "batch-size-zero",
        "config",
        ["method.batch_size", "greater than or equal to 1"],
        config={"method": {"batch_size": 0}},
        rc=2,
    ),
    Case("lr-absurd", "config", ["method.lr", "less than 10"], config={"method": {"lr": 1e9}}, rc=2),
    Case("unknown-top-key", "config", ["methdo"], config={"methdo": {"name": "lora"}}, rc=2),
    Case("unknown-task", "config", ["task", "classification"], config={"task": "sentiment"}, rc=2),
    Case("no-train", "config", ["data.train"], config={"data": {"train": None}}, rc=2),
    Case("alpha-out-of-range", "config", ["gate.alpha"], config={"gate": {"alpha": 2}}, rc=2),
    Case("unknown-method", "config", ["method", "lora"], config={"method": {"name": "nope"}}, rc=2),
    Case("unknown-model", "config", ["no-such-model", "smollm2"], config={"model": "no-such-model"}),
    Case(
        "model-folder-without-tokenizer",
        "config",
        ["tokenizer"],
        files={"m/config.json": '{"model_type": "llama"}'},
        config={"model": "m"},
    ),
    Case(
        "model-is-a-random-file",
        "config",
        ["model"],
        files={"m.gguf": b"not a gguf at all"},
        config={"model": "m.gguf"},
    ),
    Case("set-without-equals", "config", ["--set", "key=value"], argv=["validate", "{cfg}", "--set", "method.epochs"]),
    Case("set-unknown-key", "config", ["method.epochz"], argv=["validate", "{cfg}", "--set", "method.epochz=2"], rc=2),
    Case(
        "set-wrong-type", "config", ["method.epochs"], argv=["validate", "{cfg}", "--set", "method.epochs=[1,2]"], rc=2
    ),
    Case(
        "output-dir-is-a-file", "config", ["output.dir", "file"], files={"out": "x"}, config={"output": {"dir": "out"}}
    ),
    Case(
        "registry-path-is-a-file",
        "config",
        ["registry.path", "a file"],
        files={"reg": "x"},
        config={"registry": {"path": "reg"}},
        rc=2,
    ),
    Case(
        "output-dir-inside-a-file",
        "config",
        ["output.dir", "inside", "a file"],
        files={"out": "x"},
        config={"output": {"dir": "out/runs"}},
        rc=2,
    ),
    # ---- names (registry.model_name and --alias): exit 2 or 1, the name and the rule named
    Case(
        "name-dot-dot", "name", ["registry.model_name", "../evil"], config={"registry": {"model_name": "../evil"}}, rc=2
    ),
    Case("name-slash", "name", ["registry.model_name", "a/b"], config={"registry": {"model_name": "a/b"}}, rc=2),
    Case("name-space", "name", ["registry.model_name"], config={"registry": {"model_name": "has space"}}, rc=2),
    Case("name-control-char", "name", ["registry.model_name"], config={"registry": {"model_name": "bell\x07"}}, rc=2),
    Case("name-empty", "name", ["registry.model_name"], config={"registry": {"model_name": ""}}, rc=2),
    Case(  # passed validation, then could not be written
        "name-300-characters",
        "name",
        ["registry.model_name", "at most 100 characters"],
        config={"registry": {"model_name": "m" * 300}},
        rc=2,
    ),
    Case(
        "alias-dot-dot",
        "name",
        ["alias", "../x"],
        argv=["registry", "rollback", "toy", "--alias", "../x", "--registry", "{dir}/registry"],
    ),
    Case(
        "alias-slash-promote",
        "name",
        ["alias"],
        argv=["registry", "promote", "toy@1", "--alias", "a/b", "--registry", "{dir}/registry"],
    ),
    Case(
        "show-path-escape",
        "name",
        ["../../etc"],
        argv=["registry", "show", "../../etc", "--registry", "{dir}/registry"],
    ),
    Case(
        "promote-not-a-version",
        "name",
        ["toy"],
        argv=["registry", "promote", "toy@latest-ish", "--registry", "{dir}/registry"],
    ),
    # ---- config values of the wrong type (were coerced: true -> 1, 'yes' -> true, false -> 0)
    Case(
        "config-epochs-true",
        "config",
        ["method.epochs", "not a YAML boolean"],
        config={"method": {"epochs": True}},
        rc=2,
    ),
    Case(
        "config-micro-batch-quoted",
        "config",
        ["method.micro_batch_size", "not a quoted string"],
        config={"method": {"micro_batch_size": "8"}},
        rc=2,
    ),
    Case(
        "config-max-length-tiny",
        "config",
        ["method.max_length", "at least 16", "auto"],
        config={"method": {"max_length": 8}},
        rc=2,
    ),
    Case(
        "config-labels-placeholder-unlisted",
        "config",
        ["prompt.instruction", "{labels}", "list_labels"],
        config={"prompt": {"instruction": "Pick one of {labels}.", "list_labels": False}},
        rc=2,
    ),
    Case(
        "config-calibrated-yes",
        "config",
        ["baselines.calibrated", "true or false"],
        config={"baselines": {"calibrated": "yes"}},
        rc=2,
    ),
    Case(
        "config-split-seed-false",
        "config",
        ["data.split_seed", "a number"],
        config={"data": {"split_seed": False}},
        rc=2,
    ),
    Case(  # YAML's booleans were stringified to 'True'/'False' and the data was blamed
        "config-labels-unquoted-yes-no",
        "config",
        ["data.labels", "booleans", "quote them"],
        config={"data": {"labels": [True, False]}},
        rc=2,
    ),
    Case(  # blamed data.min_examples_per_label
        "dev-fraction-too-large",
        "config",
        ["data.dev_fraction 0.99", "lower it"],
        config={"data": {"dev_fraction": 0.99}},
        rc=1,
    ),
    Case(  # blamed data.dev
        "dev-fraction-too-small",
        "config",
        ["data.dev_fraction 0.001", "raise it"],
        config={"data": {"dev_fraction": 0.001}},
        rc=1,
    ),
    Case(  # Python's re accepted it, then polars failed and the CSV file was blamed
        "config-label-pattern-lookahead",
        "config",
        ["data.label_pattern", "lookahead", "polars"],
        config={"data": {"label_pattern": "^(\\w+)(?=:)"}},
        rc=2,
    ),
    Case(  # was reported as a missing tokenizer
        "model-config-json-invalid",
        "config",
        ["config.json", "not valid JSON"],
        setup=_damaged_model_config,
    ),
    Case(  # listed the columns after renaming: the file's own 'text' column was left out
        "text-column-mistyped",
        "config",
        ["no column 'message'", "columns found: text, label", "data.text_column"],
        config={"data": {"text_column": "message"}},
        rc=1,
    ),
    Case(  # the label was shown unquoted: 'pos ' looked like pos
        "label-with-trailing-space",
        "data",
        ["unknown_labels", "'pos '"],
        **train_file("train.csv", csv_text(GOOD_TRAIN) + '"a late arrival",pos \n'),
        rc=1,
    ),
    Case(  # was reported as an architecture transformers does not support (or a raw struct.error)
        "gguf-truncated",
        "config",
        ["cut.gguf", "truncated or damaged", "download or copy it again"],
        config={"model": "cut.gguf"},
        setup=_truncated_gguf,
    ),
    Case(  # passed the writability pre-check as root, then a raw FileNotFoundError
        "registry-under-proc",
        "config",
        ["registry.path", "/proc"],
        config={"registry": {"path": "/proc/tunegate-registry"}},
        rc=2,
    ),
    Case(  # passed validation on a 2-core machine
        "config-more-processes-than-cores",
        "config",
        ["hardware.processes", "CPU core"],
        config={"hardware": {"processes": min(64, usable_cores() + 1)}},
        rc=2,
    ),
    # ---- command-line arguments
    Case(
        "serve-port-out-of-range",
        "cli",
        ["--port", "99999", "1-65535"],
        argv=["serve", "--model", "toy@production", "--port", "99999", "--registry", "{dir}/registry"],
    ),
    Case(
        "serve-port-busy",
        "cli",
        ["port", "in use"],
        argv=["serve", "--model", "toy@production", "--port", "{busy}", "--registry", "{dir}/registry"],
    ),
    Case(
        "predict-unknown-model",
        "cli",
        ["ghost"],
        argv=["predict", "--model", "ghost@production", "hi", "--registry", "{dir}/registry"],
    ),
    Case(
        "audit-verify-unknown-run",
        "cli",
        ["no audit record", "nope"],
        argv=["audit", "verify", "nope", "--registry", "{dir}/registry"],
    ),
    Case("resume-path-escape", "cli", ["--resume", "../x"], argv=["run", "{cfg}", "--resume", "../x"]),
    Case(
        "audit-show-empty-run-id",  # an empty prefix matched every run
        "cli",
        ["run id is empty"],
        argv=["audit", "show", "", "--registry", "{dir}/registry"],
    ),
    Case(
        "audit-since-not-a-date",  # was accepted and compared as text
        "cli",
        ["--since", "yesterday", "YYYY-MM-DD"],
        argv=["audit", "--since", "yesterday", "--registry", "{dir}/registry"],
    ),
    Case(
        "registry-list-mistyped-path",  # was "empty", exit 0
        "cli",
        ["no registry", "registyr", "does not exist"],
        argv=["registry", "list", "--registry", "{dir}/registyr"],
    ),
    Case(
        "predict-blank-text",  # was answered with a label
        "cli",
        ["TEXT 2 of 2", "empty"],
        argv=["predict", "--model", "toy@production", "fine", "   ", "--registry", "{dir}/registry"],
    ),
    Case("set-empty-key", "cli", ["--set", "'=5'", "key", "empty"], argv=["validate", "{cfg}", "--set", "=5"]),
    Case(  # said "run `tunegate audit verify`" while that very command failed with it
        "audit-verify-damaged-log",
        "cli",
        ["line 1 is not JSON", "VERIFICATION FAILED"],
        setup=lambda d: (d / "registry").mkdir() or (d / "registry" / "audit.jsonl").write_text("{not json\n"),
        argv=["audit", "verify", "20261207", "--registry", "{dir}/registry"],
    ),
    Case(
        "registry-is-a-file",
        "cli",
        ["registry", "file"],
        files={"regfile": "x"},
        argv=["registry", "list", "--registry", "{dir}/regfile"],
    ),
]


def _merge(base: dict, patch: dict) -> dict:
    out = dict(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def test_the_corpus_is_big_enough():
    counts = Counter(c.kind for c in CASES)
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES), counts
    assert all(counts[k] >= 5 for k in ("data", "config", "name", "cli")), counts


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_gets_one_clear_error(case, tmp_path, tiny_model_dir, capsys, monkeypatch):
    from tunegate.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.csv").write_text(csv_text(GOOD_TRAIN))
    (tmp_path / "eval.csv").write_text(csv_text(GOOD_EVAL))
    base = {
        "task": "classification",
        "model": str(tiny_model_dir),
        "data": {"train": "train.csv", "eval": "eval.csv", "labels": ["pos", "neg"]},
        "method": {"name": "lora", "r": 2, "max_length": 64},
        "registry": {"path": "registry", "model_name": "toy"},
        "output": {"dir": "runs"},
    }
    for rel, content in case.files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(content if isinstance(content, bytes) else content.encode())
    cfg = tmp_path / "config.yaml"
    if case.raw_config is not None:
        cfg.write_bytes(case.raw_config if isinstance(case.raw_config, bytes) else case.raw_config.encode())
    else:
        cfg.write_text(yaml.safe_dump(_merge(base, case.config), allow_unicode=False))
    if case.setup:
        case.setup(tmp_path)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        subst = {"{cfg}": str(cfg), "{dir}": str(tmp_path), "{busy}": str(busy.getsockname()[1])}
        argv = [subst.get(a, a) for a in (case.argv or ["validate", "{cfg}"])]
        argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse's own errors exit 2 with a usage line
            rc = exc.code
    finally:
        busy.close()
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc not in (0, None), f"accepted silently:\n{text[-2000:]}"
    if case.rc is not None:
        assert rc == case.rc, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    low = text.lower()
    missing = [e for e in case.expect if e.lower() not in low]
    assert not missing, f"message lacks {missing}:\n{text[-2000:]}"
    assert not any((tmp_path / "registry").glob("*/v*")), "a version was written"
    assert os.path.getsize(cfg) >= 0
