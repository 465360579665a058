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
    for part in ("flows/pipeline.py", "tasks/tune.py", "schemas/contracts.py"):
        assert f"tunegate/{part}" in names
    # every library module, subpackages included (pyproject lists packages by hand)
    missing = [
        p
        for p in (ROOT / "src" / "tunegate").rglob("*.py")
        if f"tunegate/{p.relative_to(ROOT / 'src' / 'tunegate')}" not in names
    ]
    assert not missing, f"add their packages to [tool.setuptools] packages in pyproject.toml: {missing}"
    # and the data the package reads at run time (the guards' probes)
    for probe in ("piqa.jsonl", "crows_pairs.csv", "SOURCE.md"):
        assert f"tunegate/guards/probes/{probe}" in names, "add it to [tool.setuptools.package-data]"


def test_loading_a_config_imports_nothing_heavy():
    """The config is a leaf: settings classes only; method implementations load when a method is first used."""
    code = (
        "import sys\n"
        "from tunegate.config import load_config\n"
        "cfg = load_config('examples/quickstart/config.yaml', {'method.name': 'qlora'})\n"
        "from tunegate.config import reference_markdown\n"
        "reference_markdown()\n"
        "print(sorted(m for m in ('torch', 'peft', 'transformers', 'bitsandbytes', 'evaluate', 'polars', 'prefect')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _module_names() -> dict[str, Path]:
    """Every module of the installed namespace: the library, and flows/tasks/schemas as tunegate.*."""
    roots = [(ROOT / "src" / "tunegate", "tunegate")] + [
        (ROOT / d, f"tunegate.{d}") for d in ("flows", "tasks", "schemas")
    ]
    names = {}
    for base, package in roots:
        for p in base.rglob("*.py"):
            parts = p.relative_to(base).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            names[".".join((package, *parts))] = p
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the tunegate modules it imports, at module level or inside functions (a lazy import is still a
    dependency). ``from pkg import name`` counts ``pkg.name`` when that is a module, else ``pkg``; the implicit
    import of a module's parent packages is not an edge."""
    import ast

    modules = _module_names()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                subs = {f"{base}.{a.name}" for a in node.names} & modules.keys()
                found |= subs or {base}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_no_import_circles():
    """Dependencies point one way everywhere: no strongly connected component of the import graph has two modules."""
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)
    # the graph is read right: the config reaches the method settings, and flows reach the tasks
    assert "tunegate.methods.lora" in graph["tunegate.methods"]
    assert "tunegate.tasks.validate_data" in graph["tunegate.flows.pipeline"]


def test_the_import_graph_finds_a_circle_inside_functions(tmp_path, monkeypatch):
    """The circle test sees lazy (function-level) imports: a module pair that imports each other only inside
    functions is a circle."""
    a = ROOT / "src" / "tunegate" / "_circle_probe_a.py"
    b = ROOT / "src" / "tunegate" / "_circle_probe_b.py"
    try:
        a.write_text("def f():\n    from tunegate import _circle_probe_b\n")
        b.write_text("def g():\n    import tunegate._circle_probe_a\n")
        graph = import_graph()
    finally:
        a.unlink()
        b.unlink()
    assert graph["tunegate._circle_probe_a"] == {"tunegate._circle_probe_b"}
    assert graph["tunegate._circle_probe_b"] == {"tunegate._circle_probe_a"}


def test_flows_only_wire_tasks():
    """A flow imports tasks (and the config and records it passes between them), not the library that computes:
    what a stage does lives behind its task. The temporary server's process handling is the one exception."""
    allowed = {"tunegate.config", "tunegate.records", "tunegate.prefect_env", "tunegate.distributed"}
    graph = import_graph()
    for module, imports in graph.items():
        if module.startswith("tunegate.flows"):
            library = {m for m in imports if not m.startswith(("tunegate.tasks", "tunegate.flows"))}
            assert library <= allowed, f"{module} imports {sorted(library - allowed)}; call a task instead"


def _functions():
    """(module path, function node) for every function in the library, flows and tasks."""
    import ast

    for base in ("src/tunegate", "flows", "tasks"):
        for path in sorted((ROOT / base).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield path.relative_to(ROOT), node


def test_the_code_keeps_the_shape_of_the_redesign():
    """Issue 30's targets, kept: no function over 100 lines and at most 10 over 60; no module over 600 lines; only
    stages (stages.py) and at most 10 other library functions take the whole TunegateConfig (the rest take their
    section or a small record: GateSpec, AnswerSpec, LadderContext)."""
    import ast

    lengths = {f"{p}:{f.name}": f.end_lineno - f.lineno + 1 for p, f in _functions()}
    assert not [k for k, n in lengths.items() if n > 100], "split these functions"
    over_60 = sorted((n, k) for k, n in lengths.items() if n > 60)
    assert len(over_60) <= 10, over_60
    big = [p for base in ("src/tunegate", "flows", "tasks") for p in (ROOT / base).rglob("*.py")]
    assert not [p for p in big if len(p.read_text().splitlines()) > 600], "split these modules"

    def takes_config(f) -> bool:
        args = f.args.args + f.args.kwonlyargs
        return any(a.annotation is not None and "TunegateConfig" in ast.unparse(a.annotation) for a in args)

    library = [(p, f) for p, f in _functions() if str(p).startswith("src") and takes_config(f)]
    whole = [f"{p}:{f.name}" for p, f in library if p.name != "stages.py"]
    assert len(whole) <= 10, whole
    # the count sees what it should: every stage that runs on a run's data is among those found
    stages = {f.name for p, f in library if p.name == "stages.py"}
    assert {"validate_data", "evaluate_baseline", "tune", "compare", "deploy", "record_audit"} <= stages, stages


# module names that repeat, and why each means one thing wherever it stands
PLUGIN_FILES = {
    "__init__",
    "__main__",
    "base",
    "settings",
    "method",
    "rung",
    "guard",
}  # one per package / plugin folder
SERVES = {  # a layer's module named after the library module (or command) it configures, exposes or runs
    "audit": "audit.py; cli/audit.py is its command line",
    "baselines": "config/baselines.py is the baselines: section; flows/baselines.py runs `tunegate baselines`",
    "common": "what a package's own modules share (cli/common.py, flows/common.py)",
    "costs": "costs.py; config/costs.py is its costs: section",
    "data": "data.py; config/data.py is its data: section",
    "forecast": "forecast.py; config/forecast.py is its section; flows/forecast.py runs `tunegate forecast`",
    "hardware": "hardware.py; config/hardware.py is its section",
    "registry": "registry.py; config/registry.py is its section; cli/registry.py its command line",
    "runs": "runs.py (run folders); cli/runs.py the commands that start runs",
    "serve": "cli/serve.py is `tunegate serve` (and `shadow report`); config/serve.py its serve: section",
    "tracking": "the tracking/ package; config/tracking.py is its section",
    "guards": "the guards/ package; config/guards.py is its section",
}


def test_a_name_means_one_thing():
    """No two modules share a name unless it is a plugin-folder convention or a layer's module named after what it
    serves (SERVES says which); in particular no two library modules, and no flow and task, share one."""
    import collections

    where = collections.defaultdict(list)
    for base in ("src/tunegate", "flows", "tasks", "schemas"):
        for path in (ROOT / base).rglob("*.py"):
            where[path.stem].append(path.relative_to(ROOT))
        for path in (ROOT / base).rglob("*/__init__.py"):  # a package's name counts too (tracking/)
            where[path.parent.name].append(path.parent.relative_to(ROOT))
    shared = {name: paths for name, paths in where.items() if len(paths) > 1 and name not in PLUGIN_FILES}
    assert set(shared) <= set(SERVES), {n: [str(p) for p in ps] for n, ps in shared.items() if n not in SERVES}
    for name, paths in shared.items():
        layers = [p.parts[0] if p.parts[0] in ("flows", "tasks") else "/".join(p.parts[:3]) for p in paths]
        assert len(set(layers)) == len(layers), f"{name}: {paths} (two modules of one layer)"
        assert not {"flows", "tasks"} <= set(layers), f"{name}: a flow and a task share a name ({paths})"
