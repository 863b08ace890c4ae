"""rlhf_lessons.core.data: the bundled HH-RLHF files, transcript parsing, clear errors, Dolly.

Everything except the bundled-file tests runs on tiny files written to tmp_path.
"""

import gzip
import json
import socket

import pytest

from rlhf_lessons.core import data, utils
from rlhf_lessons.core.data import (
    PreferenceDataError,
    load_dolly,
    load_hh_rlhf,
    load_preference_file,
    parse_preference_file,
    split_pair,
    split_turns,
    to_dataframe,
)

EXPECTED_ROWS = {
    "harmless-base": 2312,
    "helpful-base": 2354,
    "helpful-online": 1137,
    "helpful-rejection-sampled": 2749,
}


def _jsonl(path, rows, gz=False):
    """Write rows (dicts are JSON-encoded, strings written verbatim) one per line."""
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


GOOD = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello there!",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}


# --------------------------------------------------------------------------
# The bundled files
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def all_rows():
    return {s: load_hh_rlhf(s, "all", source="local") for s in data.SUBSETS}


def test_exact_row_counts(all_rows):
    assert {s: len(ds) for s, ds in all_rows.items()} == EXPECTED_ROWS


@pytest.mark.parametrize("subset", data.SUBSETS)
def test_train_and_eval_are_disjoint_and_cover_every_row(subset, all_rows):
    train_ds = load_hh_rlhf(subset, "train", source="local")
    train, evals = list(train_ds["row"]), list(load_hh_rlhf(subset, "eval", source="local")["row"])
    assert not set(train) & set(evals)
    assert sorted(train + evals) == list(range(EXPECTED_ROWS[subset]))
    assert all(r % 10 == 0 for r in evals)  # the documented rule: row i is eval iff i % 10 == 0
    assert len(evals) == (EXPECTED_ROWS[subset] + 9) // 10
    # "row" really indexes the file: the train rows are the same pairs as in "all"
    everything = all_rows[subset]
    for i in (0, len(train) - 1):
        assert train_ds[i]["chosen"] == everything[train[i]]["chosen"]


def test_identical_and_empty_answer_rows_are_kept_and_counted(all_rows):
    df = to_dataframe(data.load_all_hh("all", source="local"))
    assert len(df) == sum(EXPECTED_ROWS.values())
    assert int((df["chosen"] == df["rejected"]).sum()) == 36
    assert int(((df["chosen"] == "") | (df["rejected"] == "")).sum()) == 11


def test_every_prompt_ends_with_an_open_assistant_turn(all_rows):
    ds = all_rows["helpful-online"]
    assert all(p.endswith("\n\nAssistant:") for p in ds["prompt"])
    # prompt + answer gives back the transcript, up to whitespace
    for r in ds.select(range(50)):
        assert (r["prompt"] + " " + r["chosen_response"]).split() == r["chosen"].split()


def test_max_rows_keeps_the_first_rows_of_the_split():
    ds = load_hh_rlhf("helpful-online", "train", source="local", max_rows=7)
    assert list(ds["row"]) == [1, 2, 3, 4, 5, 6, 7]


# --------------------------------------------------------------------------
# Transcript parsing on hand-made transcripts
# --------------------------------------------------------------------------
def test_split_turns_multi_turn():
    t = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant: Knock knock."
    assert split_turns(t) == [("Human", "Hi"), ("Assistant", "Hello!"),
                              ("Human", "Tell me a joke"), ("Assistant", "Knock knock.")]


def test_split_turns_keeps_the_word_human_inside_a_message():
    t = "\n\nHuman: What does 'Human:' mean in a script?\n\nAssistant: It labels Human: lines."
    assert split_turns(t) == [("Human", "What does 'Human:' mean in a script?"),
                              ("Assistant", "It labels Human: lines.")]


def test_split_turns_odd_whitespace():
    t = "Human:   Hi  there \n\nAssistant:\n  Hello \n"
    assert split_turns(t) == [("Human", "Hi  there"), ("Assistant", "Hello")]


def test_split_pair_multi_turn():
    history = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant:"
    pair = split_pair(history + " Why did the chicken cross the road?",
                      history + " No.")
    assert pair.prompt == history
    assert (pair.chosen, pair.rejected) == ("Why did the chicken cross the road?", "No.")
    assert pair.n_turns == 4  # Human, Assistant, Human, and the open final Assistant turn


def test_split_pair_chosen_equals_rejected():
    t = "\n\nHuman: Hi\n\nAssistant: Hello!"
    pair = split_pair(t, t)
    assert pair.prompt == "\n\nHuman: Hi\n\nAssistant:"
    assert pair.chosen == pair.rejected == "Hello!"


def test_split_pair_odd_whitespace():
    pair = split_pair("\n\nHuman: Hi \n\nAssistant:   Hello!  \n",
                      "\n\nHuman: Hi \n\nAssistant:\tBye ")
    assert pair.prompt == "\n\nHuman: Hi \n\nAssistant:"
    assert (pair.chosen, pair.rejected) == ("Hello!", "Bye")


def test_split_pair_answer_mentions_human_colon():
    pair = split_pair("\n\nHuman: Explain\n\nAssistant: Lines start with Human: or Bot:",
                      "\n\nHuman: Explain\n\nAssistant: I can't.")
    assert pair.chosen == "Lines start with Human: or Bot:"
    assert pair.n_turns == 2


def test_split_pair_answer_that_invents_a_next_turn():
    # The chosen answer goes on to write the human's next turn itself; the split must
    # keep it inside the answer, not treat it as shared history.
    chosen = ("\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: thanks"
              "\n\nAssistant: You're welcome")
    rejected = "\n\nHuman: Hi\n\nAssistant: Go away."
    pair = split_pair(chosen, rejected)
    assert pair.prompt == "\n\nHuman: Hi\n\nAssistant:"
    assert pair.chosen == "Hello!\n\nHuman: thanks\n\nAssistant: You're welcome"
    assert pair.rejected == "Go away."


def test_split_pair_errors_in_plain_words():
    with pytest.raises(ValueError, match="no Assistant turn"):
        split_pair("\n\nHuman: Hi", "\n\nHuman: Hi")
    with pytest.raises(ValueError, match="empty chosen answer"):
        split_pair("\n\nHuman: Hi\n\nAssistant:  ", "\n\nHuman: Hi\n\nAssistant: Yo")


# --------------------------------------------------------------------------
# Bad input: each gets an error naming the file, the line and the problem
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad_line, problem",
    [
        ('{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b", ', "not valid JSON"),
        (json.dumps({"chosen": GOOD["chosen"]}), "missing key 'rejected'"),
        (json.dumps({"chosen": "\n\nHuman: hi", "rejected": "\n\nHuman: hi"}),
         "no Assistant turn"),
        (json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: ",
                     "rejected": "\n\nHuman: hi\n\nAssistant: ok"}), "empty chosen answer"),
    ],
    ids=["not-json", "missing-key", "no-assistant", "empty-answer"],
)
@pytest.mark.parametrize("gz", [False, True], ids=["jsonl", "jsonl.gz"])
def test_bad_row_error_names_file_line_and_problem(tmp_path, bad_line, problem, gz):
    path = _jsonl(tmp_path / ("pairs.jsonl.gz" if gz else "pairs.jsonl"),
                  [GOOD, GOOD, bad_line, GOOD], gz=gz)
    with pytest.raises(PreferenceDataError) as err:
        load_preference_file(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "line 3" in msg
    assert problem in msg


def test_truncated_gzip(tmp_path):
    good = _jsonl(tmp_path / "full.jsonl.gz", [GOOD] * 200, gz=True).read_bytes()
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(good[: len(good) // 2])
    for strict in (True, False):  # a broken file is never silently skipped
        with pytest.raises(PreferenceDataError, match="truncated or corrupt") as err:
            parse_preference_file(path, strict=strict)
        assert str(path) in str(err.value)


@pytest.mark.parametrize("where", ["header", "crc"])
def test_corrupt_gzip(tmp_path, where):
    raw = bytearray(_jsonl(tmp_path / "ok.jsonl.gz", [GOOD] * 20, gz=True).read_bytes())
    if where == "header":
        raw[0:2] = b"XX"  # not the gzip magic number
    else:
        raw[-8] ^= 0xFF  # the CRC-32 of the data, stored in the trailer
    path = tmp_path / "corrupt.jsonl.gz"
    path.write_bytes(bytes(raw))
    with pytest.raises(PreferenceDataError, match="truncated or corrupt") as err:
        load_preference_file(path)
    assert str(path) in str(err.value)


def test_wrong_extension_and_missing_file(tmp_path):
    with pytest.raises(PreferenceDataError, match="expected a .jsonl"):
        parse_preference_file(_jsonl(tmp_path / "pairs.json", [GOOD]))
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_preference_file(tmp_path / "nope.jsonl")


def test_strict_false_skips_and_counts_bad_rows(tmp_path, capsys):
    rows = [GOOD, "not json", GOOD, {"chosen": "x"}, GOOD, ""]  # "" = blank line, ignored
    path = _jsonl(tmp_path / "mixed.jsonl", rows)
    result = parse_preference_file(path, strict=False)
    assert len(result.rows) == 3
    assert [line for line, _ in result.skipped] == [2, 4]
    ds = load_preference_file(path, strict=False)
    assert len(ds) == 3
    out = capsys.readouterr().out
    assert "skipped 2 bad rows" in out and "lines 2, 4" in out


def test_preference_file_has_the_same_columns_as_hh_rlhf(tmp_path):
    ds = load_preference_file(_jsonl(tmp_path / "mine.jsonl", [GOOD, GOOD]))
    hh = load_hh_rlhf("helpful-online", "eval", source="local", max_rows=3)
    assert sorted(ds.column_names) == sorted(hh.column_names)
    assert ds[0]["subset"] == "mine"
    assert ds[1]["chosen_response"] == "Hello there!"
    assert ds[1]["line"] == 2
    df = to_dataframe(ds)
    assert list(df["chosen_chars"]) == [12, 12]
    assert list(df["rejected_words"]) == [2, 2]


# --------------------------------------------------------------------------
# Dolly (a MADE-UP fixture: these rows are invented for the test, not Dolly's)
# --------------------------------------------------------------------------
MADE_UP_DOLLY = [
    {"instruction": "MADE-UP: name a colour", "context": "", "response": "Blue.",
     "category": "open_qa"},
    {"instruction": "MADE-UP: summarise", "context": "Cats sleep a lot.",
     "response": "Cats sleep.", "category": "summarization"},
    {"instruction": "MADE-UP: ideas for a party", "context": "",
     "response": "Games; cake.", "category": "brainstorming"},
]


def test_load_dolly_on_a_made_up_fixture(tmp_path):
    ds = load_dolly(path=_jsonl(tmp_path / "made_up_dolly.jsonl", MADE_UP_DOLLY))
    assert len(ds) == 3
    assert sorted(ds.column_names) == sorted(data.DOLLY_SCHEMA)
    assert list(ds["category"]) == ["open_qa", "summarization", "brainstorming"]
    assert len(data.DOLLY_CATEGORIES) == 8


def test_load_dolly_bad_category_names_file_and_line(tmp_path):
    rows = MADE_UP_DOLLY[:1] + [dict(MADE_UP_DOLLY[1], category="poetry")]
    path = _jsonl(tmp_path / "made_up_dolly.jsonl", rows)
    with pytest.raises(PreferenceDataError, match=r"line 2: unknown category 'poetry'"):
        load_dolly(path=path)


def test_load_dolly_offline_returns_none_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(utils, "_ANNOUNCED", set())
    assert load_dolly(source="auto") is None
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "Dolly" in out[0]


# --------------------------------------------------------------------------
# Offline behaviour
# --------------------------------------------------------------------------
def _no_network(*args, **kwargs):
    raise AssertionError("the network was touched although HF_HUB_OFFLINE=1")


def test_hub_reachable_is_false_without_probing_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", _no_network)
    assert data.hub_reachable() is False


def test_auto_source_falls_back_to_local_and_says_so_once(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.setattr(utils, "_ANNOUNCED", set())
    ds = load_hh_rlhf("helpful-online", "all", source="auto")
    assert len(ds) == EXPECTED_ROWS["helpful-online"]
    load_hh_rlhf("helpful-online", "eval", source="auto")  # the notice is not repeated
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert "data/" in out[0] and "Hub" in out[0]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="subset='helpful'"):
        load_hh_rlhf("helpful")
    with pytest.raises(ValueError, match="split='test'"):
        load_hh_rlhf("helpful-base", "test")
    with pytest.raises(ValueError, match="source='web'"):
        load_hh_rlhf("helpful-base", source="web")
