"""Issue 19, "nothing lost, nothing silent": the outputs folder, the Hub, a learner's file.

Each test is a defect that once existed, on tiny inputs in temporary folders; none needs
the network (the Hub probe is monkeypatched) or a Jupyter kernel (nbclient is faked).
"""

import importlib.util
import json
import os
import socket
import threading
import time
from pathlib import Path

import datasets
import huggingface_hub
import nbclient
import nbformat
import pytest

from rlhf_lessons.core import data, hub, utils
from rlhf_lessons.core.config import REPO_ROOT
from rlhf_lessons.course import runner


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


# --------------------------------------------------------------------------
# The Hub, behind a proxy or without a network
# --------------------------------------------------------------------------
@pytest.fixture
def online(monkeypatch):
    """As if HF_HUB_OFFLINE were unset and nothing had been probed yet in this process."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read at import
    monkeypatch.setattr(hub, "_HUB_CACHE", [])
    monkeypatch.setattr(utils, "_ANNOUNCED", set())
    return monkeypatch


def _no_hub(timeout):
    return False, "ConnectError: [Errno -2] Name or service not known"


def _datasets_must_not_be_called(*args, **kwargs):
    raise AssertionError("datasets.load_dataset was called although the Hub can't be reached")


def test_source_hub_without_a_network_fails_at_once_with_the_offline_hint(online):
    online.setattr(hub, "_probe_hub", _no_hub)
    online.setattr(datasets, "load_dataset", _datasets_must_not_be_called)
    t0 = time.perf_counter()
    with pytest.raises(hub.HubUnreachableError, match="RLHF_LESSONS_SOURCE=local") as info:
        data.load_hh_rlhf("helpful-online", source="hub")
    assert time.perf_counter() - t0 < 1.0
    assert "HH-RLHF" in str(info.value) and "Name or service not known" in str(info.value)
    with pytest.raises(hub.HubUnreachableError, match="RLHF_LESSONS_SOURCE=local"):
        data.load_dolly(source="hub")


def test_auto_falls_back_in_one_line_and_probes_once(online, capsys):
    calls = []

    def probe(timeout):
        calls.append(timeout)
        return False, "ConnectError: TLS handshake failed"

    online.setattr(hub, "_probe_hub", probe)
    online.setattr(datasets, "load_dataset", _datasets_must_not_be_called)
    for s in ("helpful-online", "harmless-base"):
        data.load_hh_rlhf(s, "eval", source="auto")
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "data/" in out[0] and "TLS" in out[0]
    assert len(calls) == 1, "the probe is cached for the process"


def test_probe_is_bounded_even_when_the_network_hangs(online):
    online.setattr(hub, "_probe_hub", lambda timeout: (time.sleep(5), (True, ""))[1])
    t0 = time.perf_counter()
    assert hub.hub_reachable(timeout=0.3) is False
    assert time.perf_counter() - t0 < 1.0
    assert "no answer within" in hub.hub_status()[1]


class _TlsBreakingProxy:
    """A local server that accepts connections and answers garbage, as an intercepting
    proxy does to a client that doesn't trust it: the TCP connect works, TLS doesn't."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.sendall(b"HTTP/1.1 403 Forbidden by proxy\r\n\r\n")
            conn.close()


def test_a_connection_that_opens_but_fails_tls_is_not_a_reachable_hub(online):
    proxy = _TlsBreakingProxy()
    real = socket.create_connection
    online.setattr(socket, "create_connection",
                   lambda address, *a, **k: real(("127.0.0.1", proxy.port), *a, **k))
    t0 = time.perf_counter()
    assert hub.hub_reachable() is False
    assert time.perf_counter() - t0 < 3.0
    assert "SSL" in hub.hub_status()[1] or "TLS" in hub.hub_status()[1]  # not DNS, not refused
    proxy.sock.close()


def test_require_hub_names_what_needs_it_and_how_to_run_offline(online):
    online.setenv("HF_HUB_OFFLINE", "1")
    online.setattr(hub, "_probe_hub", _datasets_must_not_be_called)
    with pytest.raises(hub.HubUnreachableError) as info:
        data.require_hub("the pretrained gpt2")
    msg = str(info.value)
    assert msg.startswith("the pretrained gpt2 needs the Hugging Face Hub")
    assert "HF_HUB_OFFLINE=1" in msg and "RLHF_LESSONS_SOURCE=local" in msg
    online.setattr(hub, "_HUB_CACHE", [(True, "")])
    online.delenv("HF_HUB_OFFLINE")
    data.require_hub("the pretrained gpt2")  # reachable: returns quietly


# --------------------------------------------------------------------------
# A learner's own preference file: a huge answer costs what max_len tokens cost
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tok():
    from rlhf_lessons.course.artefacts import PRETRAINED_DIR, load_tokenizer

    return load_tokenizer(PRETRAINED_DIR, padding_side="right")


def _whole_then_cut(tok, text, max_len):
    """What encode did before: tokenise everything, add EOS, keep the last max_len."""
    return (tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])[-max_len:]


LONG_TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 200,
    "Supercalifragilisticexpialidocious" * 300 + " end",  # the cut falls inside a word
    "x" + " " * 20_000 + "a few words at the end",  # >32 characters a token: whole text
    "naïve café 😀 déjà vu, 東京 " * 400,
    "\n\nHuman: hi" + "\n\nAssistant: " + "1234567890" * 1000,
]


@pytest.mark.parametrize("max_len", [8, 32, 128])
def test_cutting_before_tokenising_gives_the_same_tokens(tok, max_len):
    from rlhf_lessons.core import batching
    from rlhf_lessons.train import reward

    assert all(len(t) > max_len * batching.CHARS_PER_TOKEN_CAP for t in LONG_TEXTS)
    ids, n_cut = reward.encode(tok, LONG_TEXTS + ["short"], max_len)
    assert ids == [_whole_then_cut(tok, t, max_len) for t in LONG_TEXTS + ["short"]]
    assert n_cut == len(LONG_TEXTS)
    prompts = batching.encode_prompts(tok, LONG_TEXTS, max_len)
    assert prompts == [tok(t, add_special_tokens=False)["input_ids"][-max_len:]
                       for t in LONG_TEXTS]


def test_a_5_mb_answer_prepares_in_about_a_second(tok):
    from rlhf_lessons.train import reward

    big = "This answer goes on and on. " * (5_000_000 // 28)
    rows = [{"prompt": "\n\nHuman: Tell me a story.\n\nAssistant:", "chosen_response": big,
             "rejected_response": "No."}]
    t0 = time.perf_counter()
    pairs = reward.prepare_pairs(rows, tok, 128)
    assert time.perf_counter() - t0 < 3.0  # about 0.1 s; tokenising all 5 MB took ~10 s
    assert len(pairs.chosen_ids[0]) == 128 and pairs.chosen_ids[0][-1] == tok.eos_token_id
    assert pairs.n_truncated == 1


# --------------------------------------------------------------------------
# A learner's own preference file: the formats they are likely to have
# --------------------------------------------------------------------------
def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


HH_ROW = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello there!",
          "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}


def test_prompt_chosen_rejected_with_answers_only_is_accepted(tmp_path):
    path = _write_jsonl(tmp_path / "mine.jsonl", [
        {"prompt": "Hi", "chosen": "Hello there!", "rejected": "Go away."},
        {"prompt": "\n\nHuman: Hi\n\nAssistant: Hey.\n\nHuman: Joke?\n\nAssistant:",
         "chosen": "Knock knock.", "rejected": "No."},
        dict(HH_ROW, prompt="\n\nHuman: Hi\n\nAssistant:"),  # HH rows with a prompt column
    ])
    ds = data.load_preference_file(path)
    assert ds[0]["chosen"] == HH_ROW["chosen"] and ds[0]["rejected"] == HH_ROW["rejected"]
    assert ds[0]["prompt"] == "\n\nHuman: Hi\n\nAssistant:"
    assert (ds[0]["chosen_response"], ds[0]["rejected_response"]) == ("Hello there!", "Go away.")
    assert ds[1]["n_turns"] == 4 and ds[1]["chosen_response"] == "Knock knock."
    assert ds[2]["chosen"] == HH_ROW["chosen"]


def test_trl_conversational_format_is_accepted(tmp_path):
    def msg(role, content):
        return {"role": role, "content": content}

    path = _write_jsonl(tmp_path / "trl.jsonl", [
        {"prompt": [msg("user", "Hi")],
         "chosen": [msg("assistant", "Hello there!")],
         "rejected": [msg("assistant", "Go away.")]},
        {"chosen": [msg("system", "Be kind."), msg("user", "Hi"), msg("assistant", "Hello!")],
         "rejected": [msg("system", "Be kind."), msg("user", "Hi"), msg("assistant", "No.")]},
    ])
    ds = data.load_preference_file(path)
    assert ds[0]["chosen"] == HH_ROW["chosen"] and ds[0]["rejected"] == HH_ROW["rejected"]
    assert ds[1]["prompt"] == "\n\nHuman: Be kind.\nHi\n\nAssistant:"
    assert (ds[1]["chosen_response"], ds[1]["rejected_response"]) == ("Hello!", "No.")


@pytest.mark.parametrize("bad, problem", [
    ({"chosen": "Hello!", "rejected": "Go away."}, "no Assistant turn"),
    ({"question": "Hi", "good": "Hello!", "bad": "Go away."}, "missing key 'chosen'"),
    ({"chosen": [{"role": "assistant", "content": "A"}],
      "rejected": [{"role": "tool", "content": "B"}]}, "'rejected' must end with an assistant"),
    ({"chosen": 3, "rejected": "x"}, "'chosen' must be a string or a list of messages"),
], ids=["answers-without-prompt", "other-columns", "bad-role", "number"])
def test_any_other_row_names_its_line_and_the_accepted_formats(tmp_path, bad, problem):
    path = _write_jsonl(tmp_path / "odd.jsonl", [HH_ROW, bad])
    with pytest.raises(data.PreferenceDataError) as info:
        data.load_preference_file(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}, line 2: ") and problem in msg
    for fmt in ("HH-RLHF transcripts", "prompt and answers", "conversational (TRL)"):
        assert fmt in msg
    result = data.parse_preference_file(path, strict=False)  # skipping still works
    assert len(result.rows) == 1 and result.skipped[0][0] == 2


def test_a_folder_named_like_a_jsonl_file_gets_a_clear_error(tmp_path):
    folder = tmp_path / "prefs.jsonl"
    folder.mkdir()
    with pytest.raises(data.PreferenceDataError, match="is a folder, not a file"):
        data.load_preference_file(folder)
