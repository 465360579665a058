"""The check that a Dask worker and the flow share the run's storage (tunegate/shared_storage.py)."""

import pytest

from tunegate import shared_storage
from tunegate.errors import TunegateError


def _places(root, *, made=True):
    if made:  # the run folder and the model exist when the check runs; the registry may not yet
        (root / "runs" / "r1").mkdir(parents=True, exist_ok=True)
        (root / "cache").mkdir(exist_ok=True)
    return shared_storage.folders(str(root / "runs" / "r1"), str(root / "cache" / "model.gguf"), str(root / "reg"))


def test_markers_a_worker_writes_where_the_flow_reads_them_pass_and_are_removed(tmp_path):
    places = _places(tmp_path)
    assert places["model"] == tmp_path / "cache"  # a model file: its folder
    assert places["registry"] == tmp_path  # not created yet: where it will be (the check creates nothing)
    shared_storage.write_markers(places, "t1")
    shared_storage.read_markers(places, "t1", "worker-host")
    assert not any(list(p.glob(".tunegate-worker-*")) for p in places.values())


def test_a_worker_whose_files_this_process_cannot_see_is_one_error_naming_what_to_share(tmp_path):
    worker_side = _places(tmp_path / "worker-disk")  # the worker's own disk: same names, not the flow's files
    shared_storage.write_markers(worker_side, "t2")
    with pytest.raises(TunegateError) as err:
        shared_storage.read_markers(_places(tmp_path), "t2", "node-7")
    msg = str(err.value)
    assert "worker on node-7" in msg and "the run folder" in msg and "the registry" in msg
    assert "storage shared by the flow and every worker" in msg and "task_runner: sequential" in msg


def test_a_folder_the_worker_cannot_write_or_does_not_see_is_named(tmp_path):
    (tmp_path / "reg").write_text("a file where the registry folder should be")
    with pytest.raises(TunegateError, match=r"worker on .* cannot write the registry .*reg"):
        shared_storage.write_markers(_places(tmp_path), "t3")
    # a worker on another disk: the flow's run folder is not there at all
    with pytest.raises(TunegateError, match=r"cannot write the run folder .*No such file or directory"):
        shared_storage.write_markers(_places(tmp_path / "elsewhere", made=False), "t4")
