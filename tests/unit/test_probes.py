"""The probes shipped with the guards (tunegate/guards/probes.py): they load offline, hold what the guards score,
and carry their source and license."""

from collections import Counter
from importlib import resources

import pytest

from tunegate.guards import PROBES, probe_rows


def test_piqa_holds_goals_two_solutions_and_the_right_one():
    rows = probe_rows("piqa")
    assert len(rows) == 300 and len({r["id"] for r in rows}) == 300
    assert all(r["goal"] and r["sol1"] and r["sol2"] and r["label"] in (0, 1) for r in rows)
    share = sum(r["label"] for r in rows) / len(rows)
    assert 0.4 < share < 0.6  # both answers right about as often: a model cannot pass by always picking one


def test_crows_pairs_keeps_every_bias_type_in_proportion():
    rows = probe_rows("crows_pairs")
    assert 290 <= len(rows) <= 310 and all(r["sent_more"] != r["sent_less"] for r in rows)
    types = Counter(r["bias_type"] for r in rows)
    assert len(types) == 9 and types.most_common(1)[0][0] == "race-color"  # the largest type of the 1,508
    assert {r["stereo_antistereo"] for r in rows} == {"stereo", "antistereo"}


def test_each_probe_names_its_source_and_license():
    source = resources.files("tunegate.guards").joinpath("probes", "SOURCE.md").read_text()
    for probe in PROBES.values():
        assert f"## {probe.file}" in source and probe.license.split()[0] in source
    assert "ShareAlike" in source and "21edab439af693b961be2f069e8690a88d3b4e37" in source
    with pytest.raises(KeyError, match="unknown probe 'mmlu'; shipped: piqa, crows_pairs"):
        probe_rows("mmlu")
