"""The library never imports Prefect; flows and tasks do."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted(
    "tunegate." + ".".join(p.relative_to(ROOT / "src" / "tunegate").with_suffix("").parts)
    for p in (ROOT / "src" / "tunegate").rglob("*.py")
    if p.name != "__init__.py" and "metrics/" not in str(p.relative_to(ROOT / "src" / "tunegate")) + "/"
    and p.parent.name not in ("accuracy", "macro_f1", "rouge_l", "exact_match", "answer_in_output")
)


def test_library_modules_do_not_import_prefect():
    code = "import sys\n" + "".join(f"import {m}\n" for m in LIBRARY) + "import schemas\nprint('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False", LIBRARY


def test_each_task_module_has_one_public_task():
    import importlib

    from prefect.tasks import Task

    for p in sorted((ROOT / "tasks").glob("*.py")):
        if p.name.startswith("_"):
            continue
        mod = importlib.import_module(f"tasks.{p.stem}")
        found = [n for n, v in vars(mod).items() if isinstance(v, Task) and v.__module__ == mod.__name__]
        assert found == [p.stem], (p.name, found)
