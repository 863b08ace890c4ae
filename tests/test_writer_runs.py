"""Notebook 08's products (rlhf_lessons.course.writer_runs): keyed so that a changed
size rebuilds only what it names."""

import dataclasses

from rlhf_lessons.core.config import LessonConfig, WriterConfig
from rlhf_lessons.course import writer_runs as WR


def test_belief_probes_are_a_product_of_their_own(tmp_path, monkeypatch):
    """Resizing the belief probes samples the probes again, never the held-out answers:
    the probes are keyed apart (``<who>-beliefs``) and the model is asked for only
    when they are built."""
    cfg = dataclasses.replace(LessonConfig.from_env(), outputs=str(tmp_path))
    wc = WriterConfig.for_preset(cfg)
    asked = []
    monkeypatch.setattr(WR.S, "ask", lambda model, tok, prompts, *a, **k:
                        asked.append(len(prompts)) or ["It is 7."] * len(prompts))
    loads = []

    def get_model():
        loads.append(1)
        return None, None

    answers = {"eval": ["It is 7."]}
    settings = WR._settings(wc, "eval_per_kind")
    out = WR._with_beliefs(cfg, wc, answers, "sft", settings, get_model, 1, "t")
    assert out["eval"] == answers["eval"] and len(out["belief"]) == wc.belief_questions
    assert len(out["beliefs"]) == len(out["belief_questions"]) == wc.belief_questions
    WR._with_beliefs(cfg, wc, answers, "sft", settings, get_model, 1, "t")  # cached
    assert loads == [1] and asked == [wc.belief_questions]
    more = dataclasses.replace(wc, belief_questions=wc.belief_questions + 2)
    again = WR._with_beliefs(cfg, more, answers, "sft", settings, get_model, 1, "t")
    assert loads == [1, 1] and len(again["belief"]) == wc.belief_questions + 2
