"""`make findings`: docs/findings.md's claims come from the metrics of a run."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import findings_table as F  # noqa: E402

from rlhf_lessons.measure import verdicts as V  # noqa: E402

DOC = "# What the course measured\n\nprose\n\n" + F.BEGIN + "\nold\n" + F.END + "\n\nmore prose\n"


def _write(tmp_path, stem, claims):
    d = tmp_path / stem
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps({"preset": "default", "claims": claims}))


def test_rewrite_writes_a_table_per_notebook_between_the_markers(tmp_path):
    _write(tmp_path, "04_ppo", [V.claim("PPO raises the score", 1.2, (0.9, 1.5), 64)])
    _write(tmp_path, "03_judge", [V.claim("beats a coin", 0.59, (0.55, 0.62), 852, null=0.5)])
    (tmp_path / "01_browse").mkdir()  # no claims: left out
    (tmp_path / "01_browse" / "metrics.json").write_text(json.dumps({"wall_s": 3}))
    new = F.rewrite(DOC, F.collect(tmp_path), "a CPU, fp32")
    assert new.startswith("# What the course measured\n\nprose\n\n") and "more prose" in new
    assert "\nold\n" not in new and new.index("**03_judge**") < new.index("**04_ppo**")
    assert "| beats a coin | +0.590 | [+0.550, +0.620] | 852 | > 0.5 | holds |" in new
    assert "a CPU, fp32" in new and "01_browse" not in new


def test_collect_refuses_a_verdict_that_does_not_follow_its_numbers(tmp_path):
    typed = dict(V.claim("beats a coin", 0.52, (0.45, 0.59), 200, null=0.5), verdict="holds")
    _write(tmp_path, "03_judge", [typed])
    with pytest.raises(ValueError, match="03_judge.*says 'holds'"):
        F.collect(tmp_path)


def test_rewrite_needs_the_markers():
    with pytest.raises(ValueError, match="findings:begin"):
        F.rewrite("no markers", {}, "x")


def test_the_findings_doc_has_the_markers():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "findings.md").read_text()
    assert doc.count(F.BEGIN) == 1 and doc.count(F.END) == 1


def test_seed_spread_is_written_from_notebook_04s_two_seeds(tmp_path):
    d = tmp_path / "04_ppo"
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps({
        "preset": "default", "claims": [V.claim("PPO raises the score", 1.4, (1.2, 1.6), 64)],
        "score_gain_in_ref_std": 1.4, "score_gain_ci95": [1.2, 1.6],
        "second_seed_gain": 1.1, "second_seed_gain_ci95": [0.9, 1.3]}))
    runs = F.collect(tmp_path)
    # 0.30 apart; half-widths 0.2 and 0.2 -> ±0.20
    assert "+1.40 [1.20, 1.60]" in F.seed_spread(runs)
    assert "0.30 apart, against intervals ±0.20 wide" in F.seed_spread(runs)
    assert "0.30 apart" in F.rewrite(DOC, runs, "a CPU, fp32")
    assert F.seed_spread({}) == ""


def test_the_precision_gap_is_computed_against_the_bf16_run():
    bf16 = {"gain": 1.0, "ci95": (0.8, 1.2), "kl": 4.0}
    assert "+0.40 from it, outside that interval" in F.precision_gap(1.4, bf16)
    assert "-0.10 from it, inside that interval" in F.precision_gap(0.9, bf16)
