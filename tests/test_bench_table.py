"""benchmarks/table.py: README's benchmark table from a run's JSON lines."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import run as bench_run  # noqa: E402
import table as T  # noqa: E402


def lines(tmp_path, recs):
    p = tmp_path / "bench.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p


def test_a_row_per_workload_both_sides_ran_and_the_fraction_of_peak(tmp_path):
    recs = [{"task": "machine_peak", "square_2048": {"fp32": 70.0}},
            {"impl": "rlhf_lessons", "task": "reward", "pairs_per_s": 90.0,
             "heldout_acc": 0.558, "peak_rss_mb": 641.0},
            {"impl": "trl", "task": "reward", "pairs_per_s": 30.0, "heldout_acc": 0.545,
             "peak_rss_mb": 1100.0},
            {"impl": "rlhf_lessons", "task": "dpo", "pairs_per_s": 20.0,
             "heldout_implicit_acc": 0.6, "peak_rss_mb": 900.0},
            {"impl": "rlhf_lessons", "task": "grpo", "episodes_per_s": 60.0, "mode": "fp32",
             "reward_rise": 0.1, "reward_rise_se": 0.05, "peak_rss_mb": 600.0},
            {"impl": "trl", "task": "grpo", "episodes_per_s": 20.0, "reward_rise": 0.1,
             "reward_rise_se": 0.02, "peak_rss_mb": 900.0},
            {"task": "summary", "mode": "fp32", "reward_pairs_per_s_ratio": 3.0,
             "grpo_episodes_per_s_ratio": 3.0,
             "reward_fraction_of_peak": 0.25, "dpo_pairs_per_s_ratio": None,
             "peak_gflop_per_s": {"square_2048": 70.0, "model_shapes": 40.0},
             "targets_met": {"reward_5x": False, "reward_half_of_peak": False}}]
    ours, peer, summary = T.read(lines(tmp_path, recs))
    rows = T.table(ours, peer, summary)
    # header, rule, the reward model, GRPO (DPO ran on one side only)
    assert len(rows) == 4
    assert rows[2] == ("| reward model | 90 pairs/s | 30 pairs/s | 3.00x | 25% | "
                       "held-out acc 0.558 vs 0.545 | 641 / 1,100 MB |")
    # a line that names its precision gets it in the row's name
    assert rows[3] == ("| GRPO, fp32 | 60 episodes/s | 20 episodes/s | 3.00x | not counted | "
                       "reward rise +0.100 ± 0.050 vs +0.100 ± 0.020 | 600 / 900 MB |")
    foot = T.footer(summary, "a test machine")
    assert "0 of 2" in foot and "reward_5x, reward_half_of_peak" in foot
    assert "two runs" not in foot and "two runs" in T.footer(summary, "x", pooled=True)
    # our side pooled over two runs: the cell shows both
    ours["reward"]["pairs_per_s_runs"] = [120.0, 72.0]
    assert "| 90 pairs/s (runs 120, 72) | 30 pairs/s |" in T.table(ours, peer, summary)[2]
    readme = f"# x\n{T.BEGIN}\nold\n{T.END}\ntail\n"
    new = T.rewrite(readme, rows, foot)
    assert new.startswith(f"# x\n{T.BEGIN}\n| workload") and new.endswith(f"{T.END}\ntail\n")
    assert "old" not in new


def test_a_run_without_its_summary_or_markers_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no summary line"):
        T.read(lines(tmp_path, [{"task": "reward", "impl": "trl"}]))
    with pytest.raises(ValueError, match="line 1: not JSON"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text("{oops\n")
        T.read(bad)
    with pytest.raises(ValueError, match="bench-table:begin"):
        T.rewrite("no markers here", [], "")


def test_speed_targets_check_only_what_ran():
    s = {"reward_pairs_per_s_ratio": 5.2, "dpo_pairs_per_s_ratio": 4.9,
         "ppo_episodes_per_s_ratio": None, "reward_fraction_of_peak": 0.5,
         "dpo_peak_rss_ratio": 1.01, "writer_episodes_per_s_ratio": 1.5}
    assert bench_run.speed_targets(s) == {
        "reward_5x": True, "dpo_5x": False, "reward_half_of_peak": True,
        "dpo_rss_at_most_trl": False, "writer_1.5x": True}


def test_speeds_keep_three_significant_digits():
    assert [T.speed(x) for x in (56.12, 0.7071, 19.22, 1250.4)] == ["56.1", "0.707", "19.2", "1,250"]


def test_where_the_time_goes_as_shares_of_each_trainers_total():
    ours = {"reward": {"phase_s": {"forward": 2.0, "backward": 1.5, "optimizer": 0.5,
                                   "other": 1.0, "total": 5.0}},
            "ppo": {"phase_s": {"sample": 6.0, "reward": 1.0, "forward": 1.0,
                                "backward": 1.0, "optimizer": 0.0, "other": 1.0,
                                "total": 10.0}},
            "dpo": {"pairs_per_s": 3.0}}  # an older record without phases: no row
    rows = T.phase_table(ours)
    assert rows[0] == ("| where our time goes | sample | reward | forward | backward | "
                       "optimizer | other | seconds |")
    assert rows[2] == "| reward model |  |  | 40% | 30% | 10% | 20% | 5.0 |"
    assert rows[3] == "| PPO | 60% | 10% | 10% | 10% | 0% | 10% | 10.0 |"
    assert len(rows) == 4 and T.phase_table({"dpo": {}}) == []
