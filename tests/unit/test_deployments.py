"""Every deployment spec loads: its entrypoint is a Prefect flow and its parameters fit it."""

import importlib
import inspect
from pathlib import Path

import pytest
import yaml

from tunegate.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())


@pytest.mark.parametrize("dep", SPEC["deployments"], ids=[d["name"] for d in SPEC["deployments"]])
def test_deployment_entrypoint_and_parameters(dep):
    from prefect import Flow

    path, _, name = dep["entrypoint"].partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name)
    assert isinstance(flow, Flow)
    params = inspect.signature(flow.fn).parameters
    assert set(dep["parameters"]) <= set(params)
    cfg = load_config(ROOT / dep["parameters"]["config_path"])
    assert cfg.registry.model_name
    assert dep["work_pool"]["name"]
    for sched in dep.get("schedules", []):
        assert len(sched["cron"].split()) == 5
