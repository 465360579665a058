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
    assert set(dep.get("parameters", {})) <= set(params)
    if name == "tune_remote":  # started by a run's `orchestration.tune_on` with its records: no schedule
        assert not dep.get("schedules") and not dep.get("parameters")
        return
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
    assert {d["work_pool"]["name"] for d in deps.values()} == {"tunegate-process", "tunegate-gpu"}
    assert deps["tune-gpu"]["work_pool"]["name"] == "tunegate-gpu"  # training on the GPU machine's pool
    k8s = {d["work_pool"]["name"] for d in SPECS["kubernetes.yaml"]["deployments"]}
    assert k8s == {"tunegate-k8s", "tunegate-k8s-gpu"}


POOL_TEMPLATES = {"tunegate-k8s": "pool-cpu.json", "tunegate-k8s-gpu": "pool-gpu.json"}
K8S = [d for d in SPECS["kubernetes.yaml"]["deployments"]]


def rendered_job(dep: dict) -> dict:
    """The Job a Kubernetes worker would create for ``dep``: its pool's base job template (deployments/k8s/)
    rendered with the variables' defaults and the deployment's job_variables by Prefect's own templating, then
    what prefect-kubernetes does before submitting it (env as a list, the command string split into args)."""
    import json
    import shlex

    from prefect.utilities.templating import apply_values

    template = json.loads((ROOT / "deployments" / "k8s" / POOL_TEMPLATES[dep["work_pool"]["name"]]).read_text())
    props = template["variables"]["properties"]
    values = {k: v["default"] for k, v in props.items() if "default" in v}
    values |= {"name": dep["name"], "command": "prefect flow-run execute"} | dep["work_pool"]["job_variables"]
    assert set(values) <= set(props), f"job_variables the pool does not declare: {set(values) - set(props)}"
    job = apply_values(template["job_configuration"], values)["job_manifest"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": k, "value": v} for k, v in container["env"].items()]
    container["args"] = shlex.split(container["args"])
    return job


@pytest.mark.parametrize("dep", K8S, ids=[d["name"] for d in K8S])
def test_every_kubernetes_deployment_renders_a_job_the_kubernetes_schema_accepts(dep):
    """No cluster: kubernetes-validate's schema of the newest Kubernetes release it knows, strict (an unknown
    field is an error too)."""
    import kubernetes_validate

    job = rendered_job(dep)
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "tunegate-shared"
    assert pod["containers"][0]["volumeMounts"] == [{"name": "shared", "mountPath": "/shared"}]
    limits = pod["containers"][0]["resources"]["limits"]
    if dep["entrypoint"].endswith(":tune_remote"):  # the training pool asks for a GPU node
        assert limits["nvidia.com/gpu"] == 1 and pod["nodeSelector"] and pod["tolerations"]
    else:
        assert "nvidia.com/gpu" not in limits


def test_the_kubernetes_check_catches_a_broken_job():
    import kubernetes_validate

    job = rendered_job(next(d for d in K8S if d["name"] == "tune-gpu-k8s"))
    job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = {"count": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)
