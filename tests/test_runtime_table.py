"""scripts/runtime_table.py rewrites README's run-time table from metrics.json files."""

import importlib.util
import json
import os

import pytest

from rlhf_lessons.core.config import REPO_ROOT

_spec = importlib.util.spec_from_file_location("runtime_table",
                                               REPO_ROOT / "scripts" / "runtime_table.py")
rt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rt)

README = """intro
<!-- runtime-table:begin -->
| # | notebook | topic | 2-core CPU, fast preset | 2-core CPU, default preset | GPU |
|---|---|---|---|---|---|
| 00 | `00_setup_check` | versions | seconds | 5 s | not needed |
| 01 | `01_browse` | data | seconds | 12 s | not needed |
<!-- runtime-table:end -->
outro
"""


def _fake_outputs(tmp_path, runs):
    for stem, m in runs.items():
        (tmp_path / stem).mkdir()
        (tmp_path / stem / "metrics.json").write_text(json.dumps(m))
        os.utime(tmp_path / stem / "metrics.json", (86400 * 3, 86400 * 3))  # 1970-01-04
    return tmp_path


def test_format_seconds():
    assert rt.format_seconds(12.4) == "12 s"
    assert rt.format_seconds(108) == "1.8 min"
    with pytest.raises(ValueError, match="s=-1"):
        rt.format_seconds(-1)


def test_rewrite_updates_the_preset_column_and_adds_missing_notebooks(tmp_path):
    out = _fake_outputs(tmp_path, {
        "01_browse": {"wall_s": 30.0, "preset": "default"},
        "05_new": {"wall_s": 150.0, "preset": "default"},
        "02_no_wall": {"preset": "default"},              # ignored: no wall_s
    })
    runs = rt.collect(out)
    assert sorted(runs) == ["01_browse", "05_new"]
    new = rt.rewrite(README, runs, "Test CPU, 2 cores")
    assert "| 01 | `01_browse` | data | seconds | 30 s | not needed |" in new
    assert "| 00 | `00_setup_check` | versions | seconds | 5 s | not needed |" in new  # kept
    assert "| 05 | `05_new` |  |  | 2.5 min |  |" in new
    assert new.startswith("intro\n") and new.endswith("<!-- runtime-table:end -->\noutro\n")
    assert ("on 1970-01-04: Test CPU, 2 cores; 3.0 min for the 2 notebooks." in new)
    # idempotent: a second rewrite changes nothing and keeps one "Measured" line
    assert rt.rewrite(new, runs, "Test CPU, 2 cores") == new
    assert new.count("Measured by") == 1


def test_rewrite_fast_runs_go_to_the_fast_column(tmp_path):
    runs = rt.collect(_fake_outputs(tmp_path, {"00_setup_check": {"wall_s": 3, "preset": "fast"}}))
    new = rt.rewrite(README, runs, "x")
    assert "| 00 | `00_setup_check` | versions | 3 s | 5 s | not needed |" in new


def test_rewrite_refuses_a_readme_without_markers_or_an_unknown_preset(tmp_path):
    runs = rt.collect(_fake_outputs(tmp_path, {"01_browse": {"wall_s": 3, "preset": "tpu"}}))
    with pytest.raises(ValueError, match="runtime-table:begin"):
        rt.rewrite("no table here", runs, "x")
    with pytest.raises(ValueError, match="preset 'tpu' has no column"):
        rt.rewrite(README, runs, "x")


def test_the_readme_has_the_markers():
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(rt.BEGIN) == 1 and text.count(rt.END) == 1
    rt.rewrite(text, {}, "x")  # parses


def test_rewrite_drops_rows_of_deleted_notebooks(tmp_path):
    runs = rt.collect(_fake_outputs(tmp_path, {"01_browse": {"wall_s": 3, "preset": "default"}}))
    new = rt.rewrite(README, runs, "x", existing={"01_browse"})
    assert "00_setup_check" not in new and "| 01 | `01_browse` | data | seconds | 3 s |" in new


def test_speed_reads_the_run_summary_or_says_nothing(tmp_path):
    assert rt.speed(tmp_path) == ""
    (tmp_path / "run.json").write_text('{"matmul_fp32_gflops_before": 44.4, '
                                       '"matmul_fp32_gflops_after": 41.2}')
    assert rt.speed(tmp_path) == "; a 2048² fp32 matmul at 41-44 GFLOP/s"
    (tmp_path / "run.json").write_text('{"matmul_fp32_gflops_before": 40.2, '
                                       '"matmul_fp32_gflops_after": 39.9}')
    assert rt.speed(tmp_path) == "; a 2048² fp32 matmul at 40 GFLOP/s"
    (tmp_path / "run.json").write_text("{not json")
    assert rt.speed(tmp_path) == ""


def test_matmul_gflops_measures_and_refuses_an_empty_matrix():
    from rlhf_lessons.course.runner import matmul_gflops

    assert matmul_gflops(n=64, repeats=2) > 0
    with pytest.raises(ValueError):
        matmul_gflops(n=0)
