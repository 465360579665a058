"""Every deployment spec loads: its entrypoint is a Prefect flow, its parameters fit the flow, its schedule parses."""

import importlib
import inspect
from pathlib import Path

import pytest
import yaml

from tunegate.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SPECS = {f: yaml.safe_load((ROOT / "deployments" / f).read_text()) for f in ("prefect.yaml", "kubernetes.yaml")}
DEPLOYMENTS = [(f, d) for f, spec in SPECS.items() for d in spec["deployments"]]


@pytest.mark.parametrize("spec_file,dep", DEPLOYMENTS, ids=[f"{f}:{d['name']}" for f, d in DEPLOYMENTS])
def test_deployment_entrypoint_and_parameters(spec_file, dep):
    from prefect import Flow

    path, _, name = dep["entrypoint"].partition(":")
    assert (ROOT / path).is_file()
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name)
    assert isinstance(flow, Flow)
    params = inspect.signature(flow.fn).parameters
    assert set(dep["parameters"]) <= set(params)
    assert all(p.default is not inspect.Parameter.empty for n, p in params.items() if n not in dep["parameters"])
    if spec_file == "prefect.yaml":  # the one-machine file points at configs in this repository
        cfg = load_config(ROOT / dep["parameters"]["config_path"])
        assert cfg.registry.model_name
    assert dep["work_pool"]["name"]
    for sched in dep.get("schedules", []):
        assert ("cron" in sched and len(sched["cron"].split()) == 5) or int(sched["interval"]) > 0


def test_one_machine_file_has_the_retrain_deployments_on_a_process_pool():
    deps = {d["name"]: d for d in SPECS["prefect.yaml"]["deployments"]}
    assert deps["retrain-weekly"]["entrypoint"] == "flows/retrain.py:retrain"
    assert deps["retrain-weekly"]["schedules"][0]["cron"] == "0 3 * * 1"
    assert deps["retrain-on-data-change"]["entrypoint"] == "flows/retrain.py:retrain_on_change"
    assert deps["retrain-on-data-change"]["schedules"][0]["interval"] <= 900  # a short schedule
    assert {d["work_pool"]["name"] for d in deps.values()} == {"tunegate-process"}
    k8s = {d["work_pool"]["name"] for d in SPECS["kubernetes.yaml"]["deployments"]}
    assert k8s == {"tunegate-k8s"}
