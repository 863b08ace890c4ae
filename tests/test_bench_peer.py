"""The peer workload travels with the repository: `make bench` needs nothing outside it."""

import hashlib
import importlib.util
import sys
from pathlib import Path

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
