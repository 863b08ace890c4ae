"""Issue 19, "nothing lost, nothing silent": the outputs folder, the Hub, a learner's file.

Each test is a defect that once existed, on tiny inputs in temporary folders; none needs
the network (the Hub probe is monkeypatched) or a Jupyter kernel (nbclient is faked).
"""

import importlib.util
import json
import os
from pathlib import Path

import nbclient
import nbformat
import pytest

from rlhf_lessons import runner
from rlhf_lessons.config import REPO_ROOT


# --------------------------------------------------------------------------
# The outputs folder of `make run`
# --------------------------------------------------------------------------
class _FakeClient:
    """Stands in for nbclient's: "runs" a notebook that writes its metrics.json the way
    the lessons do, to RLHF_LESSONS_OUTPUTS as the kernel sees it, from the kernel's
    working folder."""

    def __init__(self, nb, resources=None, **kwargs):
        self.cwd = Path(resources["metadata"]["path"])

    def execute(self):
        root = Path(os.environ.get("RLHF_LESSONS_OUTPUTS", REPO_ROOT / "outputs"))
        if not root.is_absolute():
            root = self.cwd / root  # a kernel resolves it against notebooks/
        (root / "99_fake").mkdir(parents=True, exist_ok=True)
        (root / "99_fake" / "metrics.json").write_text(json.dumps({"eval_accuracy": 0.75}))


@pytest.fixture
def fake_notebook(tmp_path, monkeypatch):
    monkeypatch.setattr(nbclient, "NotebookClient", _FakeClient)
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    path = nb_dir / "99_fake.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    return path


def test_summary_reads_metrics_from_the_outputs_folder_of_the_process_env(
        fake_notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_LESSONS_OUTPUTS", str(tmp_path / "elsewhere"))
    run = runner.execute_notebook(fake_notebook)  # no env: make run's own environment
    assert run.ok, run.error
    assert run.metrics == {"eval_accuracy": 0.75}
    assert runner.headline(run.metrics) == "eval_accuracy=0.75"


def test_relative_outputs_resolve_against_the_callers_folder(fake_notebook, tmp_path,
                                                            monkeypatch):
    caller = tmp_path / "caller"
    caller.mkdir()
    monkeypatch.chdir(caller)
    run = runner.execute_notebook(fake_notebook, env={"RLHF_LESSONS_OUTPUTS": "my-out"})
    assert run.metrics == {"eval_accuracy": 0.75}
    assert (caller / "my-out" / "99_fake" / "metrics.json").exists()
    assert not (fake_notebook.parent / "my-out").exists(), "artefacts split over two folders"
    assert runner.outputs_root({"RLHF_LESSONS_OUTPUTS": "my-out"}) == caller / "my-out"


def _run_notebooks_module():
    spec = importlib.util.spec_from_file_location(
        "run_notebooks", REPO_ROOT / "scripts" / "run_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_unwritable_outputs_folder_is_one_clear_line_and_a_nonzero_exit(
        tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RLHF_LESSONS_OUTPUTS", str(blocker / "outputs"))
    mod = _run_notebooks_module()
    ran = []

    def fake_execute(path, out_dir=None, **kwargs):  # what the real one does with out_dir
        ran.append(path)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return runner.NotebookRun(path.name, 0.0, True, "", {})

    monkeypatch.setattr(mod, "execute_notebook", fake_execute)
    monkeypatch.setattr("sys.argv", ["run_notebooks.py", "--only", "00_"])
    assert mod.main() != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(blocker / "outputs") in err[0]
    assert "RLHF_LESSONS_OUTPUTS" in err[0] and not ran


def test_a_copy_that_cannot_be_written_fails_the_run_not_the_runner(fake_notebook, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("RLHF_LESSONS_OUTPUTS", str(tmp_path / "out"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    run = runner.execute_notebook(fake_notebook, out_dir=blocker / "copies")
    assert not run.ok and "could not write the executed copy" in run.error
    assert run.metrics == {"eval_accuracy": 0.75}
