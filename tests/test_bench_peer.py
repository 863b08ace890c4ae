"""The peer workload travels with the repository: `make bench` needs nothing outside it."""

import hashlib
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "benchmarks" / "peer"


def _load_workload():
    spec = importlib.util.spec_from_file_location("peer_workload_under_test", PEER / "workload.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_peer_folder_is_complete():
    for name in ("workload.py", "trl_reward.py", "trl_ppo.py", "README.md", "PROVENANCE.md",
                 "assets/tinytok/tokenizer.json", "assets/tinytok/tokenizer_config.json"):
        assert (PEER / name).is_file(), f"benchmarks/peer/{name} is missing"


def test_workload_reads_the_bundled_data_file():
    W = _load_workload()
    path = Path(W.DATA_PATH).resolve()
    assert path == (ROOT / "data/hh-rlhf/harmless-base/test.jsonl.gz").resolve()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest in (PEER / "PROVENANCE.md").read_text(), "data file differs from the peer's"
    assert digest in (ROOT / "data/hh-rlhf/SOURCES.md").read_text()
    rows = W.load_rows(0, 3)
    assert len(rows) == 3 and all("chosen" in r and "rejected" in r for r in rows)


def test_default_peer_dir_is_inside_the_repository():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import peers
    finally:
        sys.path.pop(0)
    assert peers.peer_dir() == PEER.resolve()


def _peers():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import peers

    return peers


def test_our_side_runs_before_and_after_the_peer_and_pools_by_total_time():
    peers = _peers()
    order, firsts = [], []
    runs = iter([
        {"pairs_per_s": 100.0, "peak_rss_mb": 700.0, "train_peak_rss_mb": 500.0,
         "train_s": 10.0, "acc": 0.6,
         "gflop_per_s_6nt": 50.0, "phase_s": {"forward": 4.0, "total": 10.0}},
        {"pairs_per_s": 300.0, "peak_rss_mb": 650.0, "train_peak_rss_mb": 550.0,
         "train_s": 10 / 3, "acc": 0.6,
         "gflop_per_s_6nt": 150.0, "phase_s": {"forward": 2.0, "total": 10 / 3}},
    ])

    def ours():
        order.append("ours")
        return next(runs)

    def peer(first):
        order.append("peer")
        firsts.append(first["pairs_per_s"])
        return {"pairs_per_s": 40.0}

    pooled, theirs = peers.around_peer(ours, peer, "pairs_per_s")
    assert order == ["ours", "peer", "ours"] and firsts == [100.0]
    assert theirs == {"pairs_per_s": 40.0}
    # 1,000 pairs in 10 s, then in 3.33 s: 2,000 pairs in 13.33 s = 150 pairs/s
    assert pooled["pairs_per_s"] == 150.0
    assert pooled["pairs_per_s_runs"] == [100.0, 300.0]
    assert pooled["gflop_per_s_6nt"] == 75.0  # the first run's 50, scaled by 150/100
    assert pooled["peak_rss_mb"] == 700.0 and pooled["acc"] == 0.6
    assert pooled["train_peak_rss_mb"] == 550.0  # the higher, whichever run has it
    assert pooled["train_s"] == round((10 + 10 / 3) / 2, 3)
    assert pooled["phase_s"] == {"forward": 3.0, "total": round((10 + 10 / 3) / 2, 3)}


def test_pooling_joins_update_times_and_refuses_a_rate_of_zero():
    peers = _peers()
    a = {"episodes_per_s": 2.0, "update_s": [1.0, 2.0]}
    b = {"episodes_per_s": 2.0, "update_s": [3.0]}
    assert peers.pool_two_runs(a, b, "episodes_per_s")["update_s"] == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="episodes_per_s"):
        peers.pool_two_runs(a, {"episodes_per_s": 0.0}, "episodes_per_s")
