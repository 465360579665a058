"""Rendering (tunegate/report.py): the ladder table from its rows, and report.html as one self-contained file."""

from tunegate.report import ladder_table, render_html


def row(name, metric, **kw):
    return {
        "name": name,
        "metric": metric,
        "ci_low": metric - 0.05,
        "ci_high": metric + 0.05,
        "best": False,
        "prompt": "instruction + input",
        "prompt_tokens_per_request": 40,
        "retrieval_ms_per_request": 0.0,
        "latency_ms_per_request": 12,
        "setup_seconds": 0.0,
        "index_build_seconds": None,
        "index_cached": False,
        "index_mb": None,
        "leakage_excluded": 0,
        "selection_metric": None,
        **kw,
    }


def test_the_ladder_table_marks_the_baseline_and_says_what_each_rung_cost():
    rows = [
        row("zero_shot", 0.5),
        row(
            "retrieved_few_shot_bm25",
            0.7,
            best=True,
            setup_seconds=3.0,
            index_build_seconds=1.5,
            index_cached=True,
            index_mb=0.25,
            leakage_excluded=2,
        ),
    ]
    lines = ladder_table(rows, "accuracy", 0.95)
    assert lines[0].startswith("| rung | accuracy [95% CI] | in the prompt |")
    assert lines[2].startswith("| zero_shot | 0.500 [0.450, 0.550] | instruction + input | 40 |")
    assert "3.0 s (index build 1.5 s, cached) | 0.25 MB | **the baseline**; leakage guard withheld 2" in lines[3]
    # with a selection split, each rung's score there gets a column
    dev = ladder_table([row("zero_shot", 0.5, selection_metric=0.45)], "accuracy", 0.9)
    assert "accuracy on the selection split" in dev[0] and "| 0.450 |" in dev[2] and "[90% CI]" in dev[0]


def test_report_html_is_one_file_with_its_images_embedded(tmp_path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "metric.png").write_bytes(b"\x89PNG fake")
    md = "# Run report\n\n**NOT PROMOTED**: it did not win.\n\n![metric](plots/metric.png)\n\n![gone](plots/none.png)\n"
    html = render_html(md, tmp_path, promoted=False)
    assert html.startswith("<!DOCTYPE html>") and "<title>Run report</title>" in html
    assert 'src="data:image/png;base64,' in html and "plots/metric.png" not in html
    assert "[missing image plots/none.png]" in html
    assert '<p class="headline"><strong>NOT PROMOTED</strong>' in html and "#c62828" in html
