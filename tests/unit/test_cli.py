"""The command line: help texts, exit codes, and errors without tracebacks."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_config

ROOT = Path(__file__).resolve().parents[2]


def tunegate(*args, cwd=ROOT, env=None):
    return subprocess.run(
        [sys.executable, "-m", "tunegate.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env
    )


def in_process(capsys, *args) -> subprocess.CompletedProcess:
    """The CLI's entry point called in this process (a process start and its imports cost ~2-7 s a call); what a
    process run returns. A few tests here keep a real process: the exit code and stderr of the entry point."""
    from tunegate.cli import main

    try:
        rc = main([str(a) for a in args])
    except SystemExit as exc:  # argparse: --help, usage errors
        rc = exc.code or 0
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out.out, out.err)


@pytest.mark.parametrize(
    "cmd",
    [
        [],
        ["run"],
        ["retrain"],
        ["validate"],
        ["predict"],
        ["serve"],
        ["registry"],
        ["registry", "list"],
        ["registry", "promote"],
        ["registry", "rollback"],
        ["registry", "history"],
        ["audit"],
        ["audit", "verify"],
    ],
)
def test_help(cmd, capsys):
    out = in_process(capsys, *cmd, "--help")
    assert out.returncode == 0
    assert "usage: tunegate" in out.stdout and len(out.stdout) > 200 or "options" in out.stdout


def test_config_error_exit_2_no_traceback(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("task: classification\ndata: {train: x.csv, labels: [a, b]}\nmethod: {name: lora, rr: 4}\n")
    out = tunegate("run", p)
    assert out.returncode == 2
    assert "method.rr: unknown key" in out.stderr and "did you mean 'r'" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_missing_model_folder(tmp_path, toy_data, capsys):
    cfg = make_config(tmp_path, tmp_path / "no-such-model", toy_data)
    out = in_process(capsys, "validate", cfg)
    assert out.returncode == 1 and "no such file or folder" in out.stderr and "Traceback" not in out.stderr


def test_hub_id_offline_is_a_clear_error(tmp_path, toy_data, capsys):
    cfg = make_config(tmp_path, "someorg/some-model", toy_data)
    out = in_process(capsys, "validate", cfg)
    assert out.returncode == 1 and "HF_HUB_OFFLINE" in out.stderr and "Traceback" not in out.stderr


def test_a_device_this_machine_lacks_is_one_message_before_any_stage(tmp_path, tiny_model_dir, toy_data):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = make_config(tmp_path, tiny_model_dir, toy_data, hardware={"device": "cuda"})
    out = tunegate("validate", cfg)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "hardware.device is 'cuda' but torch sees no CUDA device" in out.stderr and "auto or cpu" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_validate_bad_data(tmp_path, tiny_model_dir, toy_data, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood,pos\ngood,pos\nx,zzz\nbad,neg\n")
    cfg = make_config(tmp_path, tiny_model_dir, {**toy_data, "train": bad})
    out = in_process(capsys, "validate", cfg)
    assert out.returncode == 1
    assert "[duplicates]" in out.stderr and "[unknown_labels]" in out.stderr and "(rows 3)" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "registry").exists()


def test_validate_good_data(tmp_path, tiny_model_dir, toy_data):
    # switching the method on the command line says which of the config's LoRA settings it dropped
    out = tunegate("validate", make_config(tmp_path, tiny_model_dir, toy_data), "--set", "method.name=linear_probe")
    assert out.returncode == 0 and "PASSED" in out.stdout
    assert "note: method.name=linear_probe replaces the config's lora settings: dropped alpha" in out.stderr


def test_registry_list_empty_and_predict_unknown(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    out = in_process(capsys, "registry", "list", "--registry", tmp_path / "r")
    assert out.returncode == 0 and "empty" in out.stdout
    out = in_process(capsys, "predict", "--registry", tmp_path / "r", "--model", "nope", "hello")
    assert out.returncode == 1 and "no model 'nope'" in out.stderr and "Traceback" not in out.stderr


BAD_INPUTS = {
    # case: (train file content or None for a missing file, file name, expected text in the error)
    "missing_file": (None, "absent.csv", "file not found"),
    "wrong_format": ("PAR1 not really parquet", "train.parquet", "could not be read as parquet"),
    "missing_column": ("message,label\nhello,pos\n", "train.csv", "no column 'text'"),
    "empty_texts": ('text,label\n"",pos\n  ,neg\ngood,pos\nbad,neg\n', "train.csv", "[empty_text]"),
    "unknown_labels": ("text,label\na,pos\nb,neg\nc,maybe\nd,pos\ne,neg\n", "train.csv", "[unknown_labels]"),
    "duplicates": ("text,label\na,pos\na,pos\nb,neg\nc,neg\nd,pos\n", "train.csv", "[duplicates]"),
    "leaking_rows": ("text,label\na film I loved,pos\nb,neg\nc,neg\nd,pos\n", "train.csv", "[leakage]"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_clear_paragraph(case, tmp_path, tiny_model_dir, capsys, monkeypatch):
    content, name, expected = BAD_INPUTS[case]
    train = tmp_path / name
    if content is not None:
        train.write_text(content)
    evl = tmp_path / "eval.csv"
    evl.write_text("text,label\na film I loved,pos\nhated it,neg\n")
    cfg = make_config(tmp_path, tiny_model_dir, {"train": train, "eval": evl})
    if case == "missing_column":  # one case through a real process: the entry point, its exit code, its stderr
        out = tunegate("validate", cfg)
        rc, stdout, stderr = out.returncode, out.stdout, out.stderr
    else:  # the others in-process, as the bad-input corpus runs (a process start and its imports cost ~7 s)
        monkeypatch.chdir(tmp_path)
        out = in_process(capsys, "validate", cfg)
        rc, stdout, stderr = out.returncode, out.stdout, out.stderr
    assert rc == 1
    errors = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and expected in errors[0], stderr  # one paragraph naming the problem
    assert "Traceback" not in stdout + stderr
    assert not (tmp_path / "registry").exists()


def test_serve_and_rollback_errors_are_clear(tmp_path):
    out = tunegate("serve", "--model", "nope@production", "--registry", tmp_path / "reg", "--port", "0")
    assert out.returncode == 1 and "no model 'nope'" in out.stderr and "Traceback" not in out.stderr
    out = tunegate("registry", "rollback", "nope", "--registry", tmp_path / "reg")
    assert out.returncode == 1 and "no model 'nope'" in out.stderr and "Traceback" not in out.stderr


def test_a_stop_is_described_in_the_words_of_the_command_stopped():
    """A stopped server does not claim a cancelled run; the commands that start a run (their `Command` says so)
    do; validate and the rest only say nothing half-written was kept."""
    from argparse import Namespace

    from tunegate.cli import stopped_what
    from tunegate.cli.runs import COMMANDS

    assert "server stopped" in stopped_what(Namespace(command="serve"))
    runs = {c.name for c in COMMANDS if c.cancels_a_run}
    assert runs == {"run", "retrain", "compare", "forecast", "baselines", "plan"}
    assert all("'cancelled'" in stopped_what(Namespace(command=c)) for c in runs)
    assert "cancelled" not in stopped_what(Namespace(command="validate"))
