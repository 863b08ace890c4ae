"""Test-wide settings: the fast preset, the CPU, no Hub, outputs in a temp folder."""

import os

# Set before any rlhf_lessons import reads them (config.py is their only reader).
os.environ["RLHF_LESSONS_FAST"] = "1"
os.environ["RLHF_LESSONS_DEVICE"] = "cpu"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _outputs_in_tmp(tmp_path_factory):
    """Runs write to a temporary outputs/ so tests never touch the user's artefacts."""
    path = tmp_path_factory.mktemp("outputs")
    os.environ["RLHF_LESSONS_OUTPUTS"] = str(path)
    yield path
