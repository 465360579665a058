"""`tracking.mlflow` against a real `mlflow server` on 127.0.0.1 (SQLite backend, its own artifact store: the
session's `mlflow_server`): two versions promoted and a rollback, each followed by the mirrored registered model's
`production` alias, as MLflow's own client sees it. (A whole Prefect run logging to the server from Dask workers:
test_flow_tiny.py's dask run; the SQLite store without a server, and a server that is down: test_tracking.py.)"""

import pytest

from tests.conftest import make_config, pipeline_run, write_toy_data
from tunegate.cli import main
from tunegate.config import load_config

pytestmark = pytest.mark.integration


def test_the_mirrored_alias_follows_promote_and_a_rollback_by_hand(mlflow_server, tmp_path, tiny_model_dir, capsys):
    from mlflow import MlflowClient

    sections = dict(
        gate={"min_gain": -1.0, "mcnemar": False, "bootstrap_samples": 100},
        baselines={"few_shot": {"enabled": False}, "retrieved_few_shot": {"enabled": False}, "calibrated": False},
        tracking={"mlflow": {"uri": mlflow_server, "experiment": "mirror"}},
        registry={"path": str(tmp_path / "registry"), "model_name": "mirrored"},  # the server is the session's
    )
    cfg = load_config(make_config(tmp_path, tiny_model_dir, write_toy_data(tmp_path), **sections))
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    runs = []
    for version in (1, 2):  # each promoted over the last (min_gain -1): production moves, the mirror follows
        run, _, deployed = pipeline_run(cfg)
        assert deployed.production_moved and deployed.registered_version == version
        mirrored = client.get_model_version_by_alias("mirrored", "production")
        assert mirrored.tags["tunegate.version"] == str(version) and mirrored.tags["tunegate.run_id"] == run.run_id
        (mlrun,) = client.search_runs(
            [client.get_experiment_by_name("mirror").experiment_id], f"tags.`tunegate.run_id` = '{run.run_id}'"
        )
        assert mirrored.run_id == mlrun.info.run_id  # registered from the run that trained it, with its files
        files = {a.path for a in client.list_artifacts(mlrun.info.run_id, f"registry/mirrored/v{version}")}
        assert f"registry/mirrored/v{version}/artifact" in files
        runs.append(mlrun)
    # a rollback by hand (the CLI reads no config: the registry remembers its mirror) moves MLflow's alias back
    assert main(["registry", "rollback", "mirrored", "--registry", str(tmp_path / "registry")]) == 0
    assert "rolled mirrored@production back from v2 to v1" in capsys.readouterr().out
    back = client.get_model_version_by_alias("mirrored", "production")
    assert back.tags["tunegate.version"] == "1" and back.run_id == runs[0].info.run_id
    assert sorted(v.tags["tunegate.version"] for v in client.search_model_versions("name = 'mirrored'")) == ["1", "2"]
