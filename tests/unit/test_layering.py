"""The library never imports Prefect; flows and tasks do."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted(
    "tunegate." + ".".join(p.relative_to(ROOT / "src" / "tunegate").with_suffix("").parts)
    for p in (ROOT / "src" / "tunegate").rglob("*.py")
    if p.name not in ("__init__.py", "__main__.py")
)


def test_library_modules_do_not_import_prefect():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in LIBRARY)
        + "import tunegate.schemas\nprint('prefect' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False", LIBRARY


def test_each_task_module_has_one_public_task():
    import importlib

    from prefect.tasks import Task

    for p in sorted((ROOT / "tasks").glob("*.py")):
        if p.name.startswith("_"):
            continue
        mod = importlib.import_module(f"tunegate.tasks.{p.stem}")
        found = [n for n, v in vars(mod).items() if isinstance(v, Task) and v.__module__ == mod.__name__]
        assert found == [p.stem], (p.name, found)


def test_the_wheel_installs_only_the_tunegate_namespace(tmp_path):
    """flows/, tasks/ and schemas/ install as tunegate.flows/tasks/schemas: no top-level `tasks` to collide with."""
    import zipfile

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(ROOT),
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    wheel = next(tmp_path.glob("tunegate-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"tunegate", wheel.name.split("-py3")[0] + ".dist-info"}
    for part in ("flows/pipeline.py", "tasks/tune.py", "schemas/records.py", "metrics/accuracy.py", "methods/lora.py"):
        assert f"tunegate/{part}" in names
