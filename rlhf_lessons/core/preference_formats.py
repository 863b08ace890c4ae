"""The shapes a row of a learner's preference file may take, turned into HH transcripts.

Used by :mod:`rlhf_lessons.core.data` (``load_preference_file``, notebook 01 and 03). Every
accepted row becomes two HH-RLHF transcripts, ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``,
so one parser and one judge serve them all. One JSON object a line, in one of:

1. HH-RLHF: ``chosen`` and ``rejected`` are whole transcripts that share their history.
2. Prompt and answers: ``prompt`` is the question (plain text, or an HH transcript
   ending in an open Assistant turn), ``chosen`` and ``rejected`` are the answers only.
3. Conversational (TRL): ``chosen`` and ``rejected`` are lists of
   ``{"role", "content"}`` messages, optionally after a ``prompt`` list of them. Roles
   are ``user`` (Human), ``assistant`` and ``system`` (folded into the next user turn);
   each side ends with an assistant message.

Anything else is refused with :data:`FORMATS_HINT`, one example line of each format.
"""

from __future__ import annotations

import json

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
_ROLES = {"user": "Human", "assistant": "Assistant", "system": "System"}

_EXAMPLES = (
    ("HH-RLHF transcripts",
     {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}),
    ("prompt and answers", {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}),
    ("conversational (TRL)",
     {"prompt": [{"role": "user", "content": "Hi"}],
      "chosen": [{"role": "assistant", "content": "Hello!"}],
      "rejected": [{"role": "assistant", "content": "Go away."}]}),
)
FORMATS_HINT = "Accepted rows, one JSON object a line:\n" + "\n".join(
    f"  {name}: {json.dumps(example)}" for name, example in _EXAMPLES)


class RowFormatError(ValueError):
    """A row in none of the accepted formats (the file's error then adds FORMATS_HINT)."""


def hh_prompt(prompt: str) -> str:
    """A prompt as an HH transcript ending in an open Assistant turn.

    Plain text becomes one Human turn; a transcript (``"Human: ..."`` or
    ``"\\n\\nHuman: ..."``) keeps its turns and gains the open Assistant turn if needed.
    """
    text = prompt.strip()
    if not text:
        raise RowFormatError("'prompt' is empty")
    if HUMAN not in "\n\n" + text:
        return f"{HUMAN} {text}{ASSISTANT}"
    text = "\n\n" + text
    return text if text.endswith(ASSISTANT.strip()) else text + ASSISTANT


def _messages_text(messages, key: str) -> str:
    """A list of {"role", "content"} messages as HH turns (a system message is folded
    into the next Human turn, HH having no system role)."""
    if not isinstance(messages, list) or not messages:
        raise RowFormatError(f"{key!r} must be a non-empty list of messages")
    out, system = [], ""
    for i, m in enumerate(messages):
        if not (isinstance(m, dict) and isinstance(m.get("content"), str)
                and m.get("role") in _ROLES):
            raise RowFormatError(
                f"{key!r} message {i}: expected {{\"role\": user|assistant|system, "
                f"\"content\": str}}, got {json.dumps(m)[:80]}")
        if m["role"] == "system":
            system += m["content"].strip() + "\n"
            continue
        text = m["content"].strip()
        if m["role"] == "user":
            text, system = system + text, ""
        out.append(f"\n\n{_ROLES[m['role']]}: {text}")
    return "".join(out)


def _conversation(obj: dict) -> tuple[str, str]:
    prompt = _messages_text(obj["prompt"], "prompt") if "prompt" in obj else ""
    sides = []
    for key in ("chosen", "rejected"):
        msgs = obj[key]
        last = msgs[-1] if isinstance(msgs, list) and msgs else None
        if not (isinstance(last, dict) and last.get("role") == "assistant"):
            raise RowFormatError(f"{key!r} must end with an assistant message")
        sides.append(prompt + _messages_text(msgs, key))
    return sides[0], sides[1]


def row_transcripts(obj) -> tuple[str, str]:
    """(chosen, rejected) HH transcripts of one parsed JSON row in any accepted format.

    Raises :class:`RowFormatError` (a ``ValueError``) saying what is wrong with the row.
    """
    if not isinstance(obj, dict):
        raise RowFormatError(f"expected a JSON object, got {type(obj).__name__}")
    for key in ("chosen", "rejected"):
        if key not in obj:
            raise RowFormatError(f"missing key {key!r} (keys present: {sorted(obj)})")
    chosen, rejected, prompt = obj["chosen"], obj["rejected"], obj.get("prompt")
    if isinstance(chosen, list) and isinstance(rejected, list) and (
            prompt is None or isinstance(prompt, list)):
        return _conversation(obj)
    for key in ("chosen", "rejected"):
        if not isinstance(obj[key], str):
            raise RowFormatError(f"{key!r} must be a string or a list of messages, "
                                 f"got {type(obj[key]).__name__}")
    if prompt is None or (ASSISTANT in chosen and ASSISTANT in rejected
                          and isinstance(prompt, str)
                          and chosen.startswith(prompt) and rejected.startswith(prompt)):
        return chosen, rejected  # HH-RLHF (a prompt column that repeats the start is fine)
    if not isinstance(prompt, str):
        raise RowFormatError(f"'prompt' must be a string when the answers are, got "
                             f"{type(prompt).__name__}")
    head = hh_prompt(prompt)
    return (head + " " + chosen.strip()).rstrip(), (head + " " + rejected.strip()).rstrip()


# ---------------------------------------------------------------------------
# 9.1 Our pairs in TRL's formats
# ---------------------------------------------------------------------------
# Notebook 09: HH transcripts the other way round, into TRL's dataset formats.
TRL_FORMATS = ("implicit", "explicit", "conversational")

# A Jinja chat template that renders TRL's messages as HH transcripts, so that
# ``tok.apply_chat_template(messages)`` gives back exactly the text the course trains
# on (the course tokenizer has none: a chat template is how TRL turns messages into text).
HH_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}{{ '\n\nHuman: ' + m['content'] }}"
    "{% elif m['role'] == 'assistant' %}{{ '\n\nAssistant: ' + m['content'] }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '\n\nAssistant:' }}{% endif %}")


def hh_messages(transcript: str) -> list[dict]:
    """An HH transcript as TRL messages: ``[{"role": "user"|"assistant", "content"}]``.

    ``"\\n\\nHuman: Hi\\n\\nAssistant: Hello!"`` -> a user and an assistant message.
    A trailing open ``"\\n\\nAssistant:"`` (a prompt) adds no message.
    """
    if not isinstance(transcript, str) or HUMAN not in transcript:
        raise RowFormatError(f"transcript: expected text with '\\n\\nHuman:' turns, got "
                             f"{str(transcript)[:60]!r}")
    text = transcript[transcript.index(HUMAN):]
    out = []
    for chunk in text.split(HUMAN)[1:]:
        human, *answers = chunk.split(ASSISTANT)
        out.append({"role": "user", "content": human.strip()})
        out += [{"role": "assistant", "content": a.strip()} for a in answers if a.strip()]
    return out


def split_pair(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(prompt, chosen answer, rejected answer) of two HH transcripts of one pair.

    The prompt is the shared history up to and including the last ``"\\n\\nAssistant:"``
    both share; the answers are what follows it, stripped.
    """
    n = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        n += 1
    cut = chosen.rfind(ASSISTANT, 0, n)  # the last turn wholly in the shared part
    if cut < 0:
        raise RowFormatError("chosen and rejected share no '\\n\\nAssistant:' turn")
    end = cut + len(ASSISTANT)
    return chosen[:end], chosen[end:].strip(), rejected[end:].strip()


def trl_row(chosen: str, rejected: str, fmt: str = "implicit") -> dict:
    """One HH pair as a row of TRL's preference formats (the inverse of
    :func:`row_transcripts`, up to whitespace around answers).

    - ``"implicit"``: ``{"chosen", "rejected"}``, the whole transcripts;
    - ``"explicit"``: ``{"prompt", "chosen", "rejected"}``, the shared history
      ending in ``"\\n\\nAssistant:"`` and the two answers (each with a leading space);
    - ``"conversational"``: the same three, as lists of ``{"role", "content"}``.
    """
    if fmt not in TRL_FORMATS:
        raise ValueError(f"fmt={fmt!r}: expected one of {TRL_FORMATS}")
    if fmt == "implicit":
        return {"chosen": chosen, "rejected": rejected}
    prompt, a, b = split_pair(chosen, rejected)
    if fmt == "explicit":
        return {"prompt": prompt, "chosen": " " + a, "rejected": " " + b}
    return {"prompt": hh_messages(prompt),
            "chosen": [{"role": "assistant", "content": a}],
            "rejected": [{"role": "assistant", "content": b}]}
