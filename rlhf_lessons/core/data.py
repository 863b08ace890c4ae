"""Preference data (HH-RLHF) and instruction data (Dolly): loading, parsing, splits.

Taught in notebook 01 (browse the data); used by every later notebook.

Where the data comes from
-------------------------
``source="hub"`` loads from the Hugging Face Hub, ``source="local"`` from the copies
bundled in ``data/``, and ``source="auto"`` tries the Hub only when it can be reached
and otherwise falls back to ``data/`` with a one-line notice. Whether it can be reached
is one HTTPS probe of at most a few seconds per process (:mod:`rlhf_lessons.core.hub`;
``HF_HUB_OFFLINE=1`` answers at once). With ``source="hub"`` and no Hub, loading fails
at once with :class:`~rlhf_lessons.core.hub.HubUnreachableError`, whose message says how to
run offline (``RLHF_LESSONS_SOURCE=local``), rather than after half a minute of retries.

The train/eval split (offline)
------------------------------
Only Anthropic's TEST files can be bundled, so the course splits each subset's local
rows by index: **row i is eval when i % 10 == 0, train otherwise** (10% / 90%). It is
deterministic, spreads eval over the whole file, and every notebook uses it. Nothing
in the eval part is ever used to train anything: not the tokenizer, pretraining, SFT,
the reward model or the PPO prompts. With ``source="hub"`` the split ``"train"`` is the
Hub's train split and ``"eval"`` is the Hub's test split.

Transcript format
-----------------
Each row is ``{"chosen": str, "rejected": str}``: two whole conversations
``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` that share their history and differ in the
final Assistant turn. A learner's own file may also use ``prompt``/``chosen``/``rejected``
with the answers only, or TRL's conversational format (lists of ``{"role", "content"}``
messages): :mod:`rlhf_lessons.core.preference_formats` turns both into transcripts.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rlhf_lessons.core.config import REPO_ROOT
from rlhf_lessons.core.hub import (  # noqa: F401 - hub_reachable and require_hub are re-exported
    OFFLINE_HINT,
    HubUnreachableError,
    hub_reachable,
    hub_status,
    mark_hub_unreachable,
    require_hub,
)
from rlhf_lessons.core.preference_formats import (
    ASSISTANT,
    FORMATS_HINT,
    RowFormatError,
    row_transcripts,
)
from rlhf_lessons.core.utils import say_once

DATA_DIR = REPO_ROOT / "data"
HH_DIR = DATA_DIR / "hh-rlhf"
HH_HUB_ID = "Anthropic/hh-rlhf"
DOLLY_HUB_ID = "databricks/databricks-dolly-15k"
SUBSETS = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")
# Rows in Anthropic's test file of each subset (the files bundled in data/).
LOCAL_ROWS = {
    "harmless-base": 2312,
    "helpful-base": 2354,
    "helpful-online": 1137,
    "helpful-rejection-sampled": 2749,
}
SPLITS = ("train", "eval", "all")
EVAL_EVERY = 10  # row i is eval when i % EVAL_EVERY == 0

_TURN_RE = re.compile(r"\n\n(Human|Assistant):")

DOLLY_CATEGORIES = (
    "open_qa", "general_qa", "classification", "closed_qa",
    "brainstorming", "information_extraction", "summarization", "creative_writing",
)
DOLLY_SCHEMA = {
    "instruction": "the task, written by a Databricks employee",
    "context": "optional reference text for the task (empty for most categories)",
    "response": "ONE reference answer, written by a person",
    "category": "one of the 8 task types",
}


class PreferenceDataError(ValueError):
    """Bad preference data. The message names the file, the line and the problem."""


# --------------------------------------------------------------------------
# Transcript parsing
# --------------------------------------------------------------------------
def split_turns(transcript: str) -> list[tuple[str, str]]:
    """Split ``"\\n\\nHuman: a\\n\\nAssistant: b"`` into ``[("Human", "a"), ("Assistant", "b")]``.

    Only ``Human:``/``Assistant:`` after a blank line start a turn, so a message that
    itself mentions "Human:" stays in one piece. Each turn's text is stripped.
    """
    text = transcript
    if not text.startswith("\n\n"):
        text = "\n\n" + text.lstrip()
    parts = _TURN_RE.split(text)
    if parts[0].strip():
        raise ValueError(f"text before the first turn: {parts[0][:40]!r}")
    return [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts), 2)]


@dataclass(frozen=True)
class Pair:
    """One preference pair, split into the shared prompt and the two final answers.

    ``prompt`` ends with ``"\\n\\nAssistant:"``; ``prompt + " " + chosen`` is the chosen
    transcript (up to whitespace).
    """

    prompt: str
    chosen: str
    rejected: str
    n_turns: int  # Human + Assistant turns, the final answer included


def split_pair(chosen: str, rejected: str, allow_empty_answer: bool = False) -> Pair:
    """Split two transcripts into their shared prompt and their differing final answers.

    The prompt is the longest common prefix of the two transcripts, cut back to its
    last ``"\\n\\nAssistant:"``. That is robust to answers that themselves contain
    "\\n\\nHuman:" (a model that invented the next turn), which a plain ``rfind`` on
    each side would split wrongly. Raises ``ValueError`` with a plain-words reason.
    """
    n = min(len(chosen), len(rejected))
    k = 0
    while k < n and chosen[k] == rejected[k]:
        k += 1
    cut = chosen.rfind(ASSISTANT, 0, k)  # the last marker wholly inside the shared part
    if cut < 0:
        which = "chosen" if ASSISTANT not in chosen else "rejected"
        if ASSISTANT in chosen and ASSISTANT in rejected:
            raise ValueError("chosen and rejected share no history up to an Assistant turn")
        raise ValueError(f"no Assistant turn in {which!r}")
    end = cut + len(ASSISTANT)
    prompt = chosen[:end]
    answers = chosen[end:].strip(), rejected[end:].strip()
    if not allow_empty_answer:
        for name, ans in zip(("chosen", "rejected"), answers):
            if not ans:
                raise ValueError(f"empty {name} answer (nothing after the last 'Assistant:')")
    n_turns = len(split_turns(prompt))  # its last turn is the open Assistant turn
    return Pair(prompt=prompt, chosen=answers[0], rejected=answers[1], n_turns=n_turns)


def prompt_history(prompt: str) -> list[tuple[str, str]]:
    """The turns of a prompt before its final (open) Assistant turn."""
    turns = split_turns(prompt)
    return turns[:-1] if turns and turns[-1] == ("Assistant", "") else turns


# --------------------------------------------------------------------------
# Reading files with clear errors
# --------------------------------------------------------------------------
@dataclass
class ParseResult:
    """Rows that parsed, and what was skipped (only when ``strict=False``)."""

    rows: list[dict] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    n_empty_answers: int = 0  # kept rows with an empty answer (allow_empty_answer=True)

    def summary(self, name: str) -> str:
        if not self.skipped:
            return f"{name}: {len(self.rows)} rows"
        lines = ", ".join(str(n) for n, _ in self.skipped[:5])
        more = "" if len(self.skipped) <= 5 else f" and {len(self.skipped) - 5} more"
        return (
            f"{name}: kept {len(self.rows)} rows, skipped {len(self.skipped)} bad rows "
            f"(lines {lines}{more}; first reason: {self.skipped[0][1]})"
        )


def _open_lines(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def parse_preference_file(
    path: str | Path, strict: bool = True, allow_empty_answer: bool = False
) -> ParseResult:
    """Read a ``.jsonl`` or ``.jsonl.gz`` file of preference rows.

    Rows may be in any format of :mod:`rlhf_lessons.core.preference_formats` (HH
    transcripts, prompt and answers, TRL's conversational messages). Every row is split into prompt and answers with :func:`split_pair`. A bad row
    raises :class:`PreferenceDataError` naming the file and line; with
    ``strict=False`` it is skipped and recorded in ``ParseResult.skipped`` instead.
    A truncated or corrupt gzip always raises: it is the file, not a row, that is bad.
    Blank lines are ignored. Row dicts carry ``row`` (0-based index among non-blank
    lines), ``line`` (1-based line number), the transcripts and the parsed fields.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such preference file")
    if path.is_dir():
        raise PreferenceDataError(f"{path} is a folder, not a file: give the path of the "
                                  ".jsonl or .jsonl.gz file itself")
    if not (path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz")):
        raise PreferenceDataError(f"{path}: expected a .jsonl or .jsonl.gz file")
    result = ParseResult()
    lineno = 0
    row = -1
    try:
        with _open_lines(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                row += 1
                try:
                    result.rows.append(_parse_row(line, row, lineno, allow_empty_answer))
                    if allow_empty_answer and not (
                        result.rows[-1]["chosen_response"] and result.rows[-1]["rejected_response"]
                    ):
                        result.n_empty_answers += 1
                except ValueError as err:
                    if strict:
                        hint = f"\n{FORMATS_HINT}" if isinstance(err, RowFormatError) else ""
                        raise PreferenceDataError(f"{path}, line {lineno}: {err}{hint}") from None
                    result.skipped.append((lineno, str(err)))
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        where = f"after line {lineno}" if lineno else "before the first complete line"
        raise PreferenceDataError(
            f"{path}: the gzip stream is truncated or corrupt {where} "
            f"({type(err).__name__}: {err}). Re-download or re-compress the file."
        ) from None
    except UnicodeDecodeError as err:
        raise PreferenceDataError(f"{path}, line {lineno + 1}: not UTF-8 text ({err})") from None
    return result


def _parse_row(line: str, row: int, lineno: int, allow_empty_answer: bool) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg} at character {err.pos + 1})") from None
    chosen, rejected = row_transcripts(obj)  # any accepted format, as HH transcripts
    try:
        return _pair_row(chosen, rejected, row, lineno, allow_empty_answer)
    except ValueError as err:  # no Assistant turn / no shared history: not a known format
        if str(err).startswith("empty"):
            raise
        raise RowFormatError(str(err)) from None


def _pair_row(chosen: str, rejected: str, row: int, lineno: int,
              allow_empty_answer: bool) -> dict:
    """The dict of one parsed pair (the columns of every loader's Dataset)."""
    pair = split_pair(chosen, rejected, allow_empty_answer=allow_empty_answer)
    return {
        "row": row,
        "line": lineno,
        "chosen": chosen,
        "rejected": rejected,
        "prompt": pair.prompt,
        "chosen_response": pair.chosen,
        "rejected_response": pair.rejected,
        "n_turns": pair.n_turns,
    }


def load_preference_file(
    path: str | Path, strict: bool = True, allow_empty_answer: bool = False, subset: str = ""
):
    """A learner's own preference file as a ``datasets.Dataset`` (same columns as HH-RLHF).

    Same parser and errors as :func:`load_hh_rlhf`. With ``strict=False`` bad rows are
    skipped, and their count is printed in one line.
    """
    import datasets

    path = Path(path)
    result = parse_preference_file(path, strict=strict, allow_empty_answer=allow_empty_answer)
    if result.skipped:
        print(result.summary(str(path)), flush=True)
    if not result.rows:
        raise PreferenceDataError(f"{path}: no usable rows")
    name = subset or path.name.split(".")[0]
    for r in result.rows:
        r["subset"] = name
    return datasets.Dataset.from_list(result.rows)


# --------------------------------------------------------------------------
# HH-RLHF
# --------------------------------------------------------------------------
def split_of_row(i: int) -> str:
    """``"eval"`` for every 10th row (i % 10 == 0), ``"train"`` otherwise."""
    return "eval" if i % EVAL_EVERY == 0 else "train"


def stratified_sample(subsets: Sequence[str], n: int, seed: int = 0) -> np.ndarray:
    """``n`` row indices drawn across subsets, seeded: each subset gets its share of
    ``n`` (largest remainders break ties), rows drawn at random within it, returned
    sorted. Never the first rows of a file, which hold one subset only."""
    subs = np.asarray(subsets)
    n = min(int(n), subs.size)
    names, counts = np.unique(subs, return_counts=True)
    quota = counts * n / subs.size
    take = np.floor(quota).astype(int)
    for k in np.argsort(-(quota - take), kind="stable")[:n - take.sum()]:
        take[k] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(subs == name), size=t, replace=False)
              for name, t in zip(names, take)]
    return np.sort(np.concatenate(picked)).astype(int)


def _resolve_source(source: str, what: str) -> str:
    if source not in ("auto", "hub", "local"):
        raise ValueError(f"source={source!r}: expected 'auto', 'hub' or 'local'")
    if source == "hub":
        require_hub(f"{what} with source='hub'")
    if source != "auto":
        return source
    if hub_reachable():
        return "hub"
    say_once(f"📦 The Hugging Face Hub can't be reached ({hub_status()[1]}), so {what} "
             "comes from the copy bundled in data/ (offline mode).")
    return "local"


def _hub_failed(err: Exception, source: str, what: str) -> None:
    """A Hub load failed after the probe passed: raise with the hint (``source="hub"``),
    or remember it so that later loads in this process fall back at once."""
    reason = f"{type(err).__name__}: {str(err)[:160]}"
    mark_hub_unreachable(reason)
    if source == "hub":
        raise HubUnreachableError(f"Loading {what} from the Hugging Face Hub failed "
                                  f"({reason}). {OFFLINE_HINT}") from err


def local_hh_path(subset: str) -> Path:
    if subset not in SUBSETS:
        raise ValueError(f"subset={subset!r}: expected one of {', '.join(SUBSETS)}")
    return HH_DIR / subset / "test.jsonl.gz"


def load_hh_rlhf(
    subset: str,
    split: str = "train",
    source: str = "local",
    strict: bool = True,
    max_rows: int = 0,
):
    """One HH-RLHF subset as a ``datasets.Dataset``.

    Columns: subset, row, line, chosen, rejected (whole transcripts), prompt,
    chosen_response, rejected_response (final answers), n_turns.

    ``split``: "train", "eval" or "all" (see the module docstring for the split).
    Empty final answers are kept: Anthropic's files hold 11 such rows, a real rater
    choice between an answer and silence. ``max_rows`` > 0 keeps the first rows of
    the split only (the fast preset uses it).
    """
    import datasets

    if split not in SPLITS:
        raise ValueError(f"split={split!r}: expected one of {', '.join(SPLITS)}")
    path = local_hh_path(subset)
    where = _resolve_source(source, "HH-RLHF")
    if where == "hub":
        try:
            return _load_hh_hub(subset, split, max_rows)
        except Exception as err:  # noqa: BLE001 - any Hub failure falls back in auto mode
            _hub_failed(err, source, HH_HUB_ID)
            say_once(f"📦 Loading {HH_HUB_ID} from the Hub failed ({type(err).__name__}); "
                     "using the copy in data/.")
    result = _parse_bundled(path, strict)
    if result.skipped:
        print(result.summary(str(path)), flush=True)
    rows = [dict(r, subset=subset) for r in result.rows
            if split == "all" or split_of_row(r["row"]) == split]
    if max_rows:
        rows = rows[:max_rows]
    return datasets.Dataset.from_list(rows)


_BUNDLED_CACHE: dict = {}


def _parse_bundled(path: Path, strict: bool) -> ParseResult:
    """Parse a bundled file once per process (notebooks load the same subset many times)."""
    key = (str(path), path.stat().st_mtime_ns, strict)
    if key not in _BUNDLED_CACHE:
        _BUNDLED_CACHE[key] = parse_preference_file(path, strict=strict, allow_empty_answer=True)
    return _BUNDLED_CACHE[key]


def _load_hh_hub(subset: str, split: str, max_rows: int):
    import datasets

    hub_split = {"train": "train", "eval": "test"}.get(split)
    splits = [hub_split] if hub_split else ["train", "test"]
    parts = []
    for s in splits:
        spec = s if not max_rows else f"{s}[:{max_rows}]"
        parts.append(datasets.load_dataset(HH_HUB_ID, data_dir=subset, split=spec))
    ds = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    rows = []
    bad = 0
    for i, r in enumerate(ds):
        try:
            rows.append(dict(_pair_row(r["chosen"], r["rejected"], i, i + 1, True),
                             subset=subset))
        except ValueError:
            bad += 1
    if bad:
        print(f"{HH_HUB_ID}/{subset}: skipped {bad} rows with no shared Assistant turn")
    return datasets.Dataset.from_list(rows)


def load_all_hh(split: str = "train", source: str = "local", max_rows_per_subset: int = 0):
    """All four subsets concatenated (the ``subset`` column tells them apart)."""
    import datasets

    return datasets.concatenate_datasets(
        [load_hh_rlhf(s, split, source=source, max_rows=max_rows_per_subset) for s in SUBSETS]
    )


def to_dataframe(ds):
    """One row per pair: subset, row, prompt, chosen, rejected (the FINAL answers),
    n_turns, chosen_words, rejected_words, chosen_chars, rejected_chars."""
    import pandas as pd

    cols = ["subset", "row", "prompt", "chosen_response", "rejected_response", "n_turns"]
    df = pd.DataFrame({c: ds[c] for c in cols})
    df = df.rename(columns={"chosen_response": "chosen", "rejected_response": "rejected"})
    for side in ("chosen", "rejected"):
        df[f"{side}_words"] = df[side].str.split().str.len()
        df[f"{side}_chars"] = df[side].str.len()
    return df


# --------------------------------------------------------------------------
# Dolly
# --------------------------------------------------------------------------
def load_dolly(source: str = "auto", path: str | Path | None = None, strict: bool = True):
    """databricks-dolly-15k as a ``datasets.Dataset``, or ``None`` when it can't be had.

    No copy can be bundled offline, so with ``source="auto"`` and no Hub this prints
    one friendly line and returns ``None``; the notebook then shows the schema
    (:data:`DOLLY_SCHEMA`) and categories (:data:`DOLLY_CATEGORIES`) instead.
    ``path`` loads a local ``.jsonl`` in Dolly's schema (the tests use a made-up one).
    """
    import datasets

    if path is not None:
        return datasets.Dataset.from_list(_read_dolly_file(Path(path), strict))
    if source not in ("auto", "hub", "local"):
        raise ValueError(f"source={source!r}: expected 'auto', 'hub' or 'local'")
    if source == "hub":
        require_hub(f"Dolly ({DOLLY_HUB_ID}) with source='hub'")
    where = source if source != "auto" else ("hub" if hub_reachable() else "local")
    if where == "hub":
        try:
            return datasets.load_dataset(DOLLY_HUB_ID, split="train")
        except Exception as err:  # noqa: BLE001
            _hub_failed(err, source, DOLLY_HUB_ID)
            say_once(f"📦 Dolly could not be loaded from the Hub ({type(err).__name__}).")
            return None
    say_once("📦 Dolly (databricks/databricks-dolly-15k) is only on the Hugging Face Hub, "
             "which can't be reached: showing its schema instead.")
    return None


def _read_dolly_file(path: Path, strict: bool) -> list[dict]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such Dolly file")
    rows, skipped = [], []
    with _open_lines(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                missing = [k for k in DOLLY_SCHEMA if k not in obj]
                if missing:
                    raise ValueError(f"missing key(s) {missing}")
                if obj["category"] not in DOLLY_CATEGORIES:
                    raise ValueError(f"unknown category {obj['category']!r}")
                rows.append({k: obj[k] for k in DOLLY_SCHEMA})
            except (json.JSONDecodeError, ValueError) as err:
                if strict:
                    raise PreferenceDataError(f"{path}, line {lineno}: {err}") from None
                skipped.append(lineno)
    if skipped:
        print(f"{path}: skipped {len(skipped)} bad rows (lines {skipped[:5]})")
    return rows
