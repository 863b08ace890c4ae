"""Offline handouts: an executed notebook as one HTML file that needs no network.

``make run`` writes ``<stem>.html`` beside each executed notebook. nbconvert's own
export draws widgets with a widget manager and require.js fetched from a CDN, so
offline every widget shows as nothing. Here each widget's view is instead rendered
once, in Python, from the widget state that the headless run stored (nbclient's
``store_widget_state``): boxes become flex rows/columns, an ``HTML`` widget its
HTML, an ``Output`` widget its stored outputs (plots as inline PNG, printed text,
tables), and every control (slider, text box, menu, button) a disabled copy showing
its value. The handout is a snapshot of what the learner saw after the run: the
controls do not move (there is no kernel), and nothing is fetched.

The formulas are drawn by MathJax, carried inline (pinned, from the npm registry,
fetched once into ``cache``: :mod:`rlhf_lessons.course.web_assets`). Where it can't
be had (no cache yet, no network), the handout is written without it and says so
in one line: the formulas then show as their TeX source, everything else renders.

Used by :mod:`rlhf_lessons.course.runner` (``make run``) and :mod:`rlhf_lessons.course.slides`.
"""

from __future__ import annotations

import base64
import copy
import html
import math
import re
from pathlib import Path

import jinja2

from rlhf_lessons.core.utils import say_once
from rlhf_lessons.course.web_assets import mathjax_inline

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_REF = "IPY_MODEL_"

# nbconvert's lab template without the CDN scripts a static page does not need.
HANDOUT_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{# require.js only loads the widget manager, which the static widgets replace #}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{# no notebook of the course draws mermaid diagrams #}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{# MathJax inline, not from a CDN #}
{%- block html_head_js_mathjax -%}{{ resources.rl_mathjax }}{%- endblock html_head_js_mathjax -%}
"""


# --------------------------------------------------------------------------
# One output, one widget
# --------------------------------------------------------------------------
def output_html(out: dict) -> str:
    """HTML for one stored notebook output (stream, display data, result, error)."""
    kind = out.get("output_type")
    if kind == "stream":
        return f'<pre class="rl-stream">{html.escape(_text(out.get("text", "")))}</pre>'
    if kind == "error":
        tb = _ANSI.sub("", "\n".join(out.get("traceback", [])))
        return f'<pre class="rl-error">{html.escape(tb)}</pre>'
    data = out.get("data", {})
    if WIDGET_VIEW in data:
        return ""  # a widget inside an Output widget: drawn by its own model
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            b64 = _text(data[mime]).replace("\n", "")
            base64.b64decode(b64[:64] + "=" * (-len(b64[:64]) % 4))  # fail early if garbled
            return f'<img class="rl-plot" src="data:{mime};base64,{b64}" alt="plot">'
    if "image/svg+xml" in data:
        return _text(data["image/svg+xml"])
    if "text/html" in data:
        return _text(data["text/html"])
    if "text/plain" in data:
        return f"<pre>{html.escape(_text(data['text/plain']))}</pre>"
    return ""


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _label(s: dict) -> str:
    d = s.get("description", "")
    return f'<span class="rl-desc">{html.escape(d)}</span> ' if d else ""


def _number(value, fmt: str = "") -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if not fmt.endswith("d") else f"{value:.0f}"
    return str(value)


def widget_html(model_id: str, state: dict, depth: int = 0) -> str:
    """Static HTML for widget ``model_id`` of ``state`` ({model id: model}).

    Raises ``ValueError`` when the widgets nest deeper than 50 (a cycle).
    """
    if depth > 50:
        raise ValueError(f"widget {model_id}: nesting deeper than 50, a cycle?")
    model = state.get(model_id.removeprefix(_REF))
    if model is None:
        return ""
    name, s = model.get("model_name", ""), model.get("state", {})
    kids = "".join(widget_html(c, state, depth + 1) for c in s.get("children", []))
    if name in ("VBoxModel", "BoxModel", "GridBoxModel", "AccordionModel", "TabModel",
                "StackModel"):
        return f'<div class="rl-w rl-vbox">{kids}</div>'
    if name == "HBoxModel":
        return f'<div class="rl-w rl-hbox">{kids}</div>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return f'<div class="rl-w rl-html">{_label(s)}{s.get("value", "")}</div>'
    if name == "LabelModel":
        return f'<span class="rl-w">{html.escape(str(s.get("value", "")))}</span>'
    if name == "OutputModel":
        body = "".join(output_html(o) for o in s.get("outputs", []))
        return f'<div class="rl-w rl-output">{body}</div>'
    if name == "ButtonModel":
        return (f'<button class="rl-w" disabled>{html.escape(s.get("description", ""))}'
                "</button>")
    if name == "TextareaModel":
        return (f'<label class="rl-w">{_label(s)}<textarea disabled rows="3">'
                f'{html.escape(str(s.get("value", "")))}</textarea></label>')
    if name in ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel"):
        labels, index = s.get("_options_labels", []), s.get("index")
        shown = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else ""
        return (f'<label class="rl-w">{_label(s)}<select disabled><option>'
                f"{html.escape(str(shown))}</option></select></label>")
    if name in ("CheckboxModel", "ToggleButtonModel"):
        checked = " checked" if s.get("value") else ""
        return f'<label class="rl-w">{_label(s)}<input type="checkbox" disabled{checked}></label>'
    if name.endswith("SliderModel") or name.endswith("ProgressModel"):
        value, lo, hi = s.get("value", 0), s.get("min", 0), s.get("max", 1)
        pos, shown = value, _number(value, s.get("readout_format", ""))
        if name == "FloatLogSliderModel":
            pos = round(math.log(value, s.get("base", 10)), 6) if value > 0 else lo
        if isinstance(value, list):  # range sliders: show both ends
            pos, shown = value[0], " – ".join(_number(v) for v in value)
        return (f'<label class="rl-w">{_label(s)}<input type="range" disabled '
                f'min="{lo}" max="{hi}" step="any" value="{pos}"> '
                f'<span class="rl-readout">{html.escape(shown)}</span></label>')
    if "value" in s:  # Text, IntText, FloatText, Password, Combobox, ...
        return (f'<label class="rl-w">{_label(s)}<input type="text" disabled '
                f'value="{html.escape(str(s["value"]), quote=True)}"></label>')
    return kids


WIDGET_CSS = """<style>
.rl-w{margin:2px 4px;font-family:sans-serif;font-size:13px}
.rl-vbox{display:flex;flex-direction:column}
.rl-hbox{display:flex;flex-direction:row;flex-wrap:wrap;align-items:center}
.rl-desc{display:inline-block;min-width:6em;text-align:right;padding-right:6px}
.rl-w textarea{width:80%;vertical-align:top}
.rl-output pre{margin:2px 0}
img.rl-plot{max-width:100%}
</style>"""


# --------------------------------------------------------------------------
# A whole notebook
# --------------------------------------------------------------------------
def widget_state(nb) -> dict:
    """{model id: model} stored in ``nb``'s metadata ({} when the run stored none)."""
    return nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def static_widgets(nb) -> int:
    """Replace, in place, every widget view output of ``nb`` by its static HTML.

    The widget state is dropped from the metadata, so nothing loads a widget
    manager. Returns how many widget views were replaced. A view whose model is
    not stored keeps its ``text/plain`` fallback.
    """
    state, n = widget_state(nb), 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            model_id = data[WIDGET_VIEW].get("model_id", "")
            if model_id not in state:
                del data[WIDGET_VIEW]
                continue
            data["text/html"] = WIDGET_CSS + widget_html(model_id, state)
            del data[WIDGET_VIEW]
            n += 1
    nb.get("metadata", {}).pop("widgets", None)
    return n


def handout_html(nb, cache: Path | None = None) -> str:
    """The offline handout of executed notebook ``nb`` (``nb`` is not changed).

    ``cache``: the folder MathJax is fetched into once (see the module docstring);
    ``None`` leaves MathJax out, the formulas as TeX.
    """
    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nb)
    static_widgets(nb)
    mathjax = ""
    if cache is not None:
        try:
            mathjax = mathjax_inline(cache)
        except RuntimeError as err:
            say_once(f"handouts: formulas show as TeX source: {err}")
    exporter = HTMLExporter(
        extra_loaders=[jinja2.DictLoader({"rl_handout.html.j2": HANDOUT_TEMPLATE})],
        template_file="rl_handout.html.j2")
    body, _ = exporter.from_notebook_node(nb, resources={"rl_mathjax": mathjax})
    return body
