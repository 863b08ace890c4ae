"""Offline handouts and slide decks: the pure parts, on hand-made notebooks."""

import re

import nbformat
import pytest

from rlhf_lessons.course import handouts, slides, web_assets
from rlhf_lessons.course.runner import outputs_root

PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def _model(name, **state):
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}


STATE = {
    "box": _model("VBoxModel", children=["IPY_MODEL_row", "IPY_MODEL_view", "IPY_MODEL_out"]),
    "row": _model("HBoxModel", children=["IPY_MODEL_dd", "IPY_MODEL_sl", "IPY_MODEL_log"]),
    "dd": _model("DropdownModel", description="subset", _options_labels=["all", "a<b"], index=1),
    "sl": _model("IntSliderModel", description="pair", value=3, min=0, max=9,
                 readout_format="d"),
    "log": _model("FloatLogSliderModel", description="KL coef", value=0.1, min=-3, max=0.5,
                  base=10),
    "view": _model("HTMLModel", value="<p>Pair 4 of 10</p>"),
    "out": _model("OutputModel", outputs=[
        {"output_type": "stream", "name": "stdout", "text": "score A = +1.0 <b>"},
        {"output_type": "display_data", "data": {"image/png": PNG, "text/plain": "fig"},
         "metadata": {}}]),
}


def _nb():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("make_widget()")
    cell.outputs = [nbformat.v4.new_output(
        "display_data", data={handouts.WIDGET_VIEW: {"model_id": "box", "version_major": 2},
                              "text/plain": "VBox(...)"})]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), cell]
    nb.metadata["widgets"] = {handouts.WIDGET_STATE: {"state": STATE, "version_major": 2}}
    return nb


def test_widget_html_draws_every_part_of_the_stored_view():
    html = handouts.widget_html("IPY_MODEL_box", STATE)
    assert "<p>Pair 4 of 10</p>" in html                      # HTML widget: as is
    assert "score A = +1.0 &lt;b&gt;" in html                  # printed text: escaped
    assert f'src="data:image/png;base64,{PNG}"' in html        # plot: inline
    assert "<option>a&lt;b</option>" in html                   # menu: the chosen label
    assert 'value="3"' in html and ">3</span>" in html         # slider: value, readout
    assert 'value="-1.0"' in html and ">0.1</span>" in html    # log slider: exponent, value
    assert html.index("subset") < html.index("Pair 4")         # children in order


def test_widget_html_refuses_a_cycle():
    cyc = {"a": _model("VBoxModel", children=["IPY_MODEL_a"])}
    with pytest.raises(ValueError, match="cycle"):
        handouts.widget_html("a", cyc)


def test_static_widgets_replaces_views_and_drops_the_state():
    nb = _nb()
    assert handouts.static_widgets(nb) == 1
    data = nb.cells[1].outputs[0]["data"]
    assert handouts.WIDGET_VIEW not in data and "Pair 4 of 10" in data["text/html"]
    assert "widgets" not in nb.metadata


def test_handout_html_needs_no_cdn_widget_manager():
    nb = _nb()
    html = handouts.handout_html(nb)
    assert "Pair 4 of 10" in html and "embed-amd" not in html and "require.min.js" not in html
    assert "widgets" in nb.metadata  # the caller's notebook is not changed


def _cell(kind, src, **meta):
    cell = (nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell)(src)
    cell.metadata.update(meta)
    return cell


@pytest.mark.parametrize("cell, expected", [
    (_cell("md", "## 1.2 Why?"), "slide"),
    (_cell("md", "### 1.2.1 How?"), "subslide"),
    (_cell("md", "Some prose."), "-"),
    (_cell("md", "<details><summary>Hint</summary>x</details>"), "skip"),
    (_cell("code", "def f():\n    raise NotImplementedError", tags=["exercise", "ex-f"]), "skip"),
    (_cell("code", "x = 1"), "-"),
    (_cell("code", "\n".join(f"x{i} = {i}" for i in range(20))), "skip"),
    (_cell("md", "## 1.2 Why?", slideshow={"slide_type": "fragment"}), "fragment"),
])
def test_slide_type_rule(cell, expected):
    assert slides.slide_type(cell) == expected


def test_slide_type_gives_long_outputs_and_plots_their_own_subslide():
    long_out = _cell("code", "print(x)")
    long_out.outputs = [nbformat.v4.new_output("stream", text="a\n" * 30)]
    plot = _cell("code", "plot()")
    plot.outputs = [nbformat.v4.new_output("display_data", data={"image/png": PNG})]
    assert slides.slide_type(long_out) == "subslide" == slides.slide_type(plot)


def test_slide_type_rejects_an_unknown_type():
    with pytest.raises(ValueError, match="slide_type='page'"):
        slides.slide_type(_cell("md", "x", slideshow={"slide_type": "page"}))


def test_assign_slide_types_opens_the_deck_on_the_first_shown_cell():
    nb = nbformat.v4.new_notebook(cells=[_cell("code", ""), _cell("md", "Prose.")])
    counts = slides.assign_slide_types(nb)
    assert counts == {"skip": 1, "slide": 1}
    assert nb.cells[1].metadata["slideshow"]["slide_type"] == "slide"


# A script or stylesheet the browser would fetch over the network.
REMOTE = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//[^\s\"'>]*",
                    re.I)


def remote_refs(page: str) -> list[str]:
    """The ``<script src>`` and ``<link href>`` of ``page`` that name a network URL."""
    return REMOTE.findall(page)


def test_remote_refs_finds_cdn_scripts_and_stylesheets():
    page = ('<script src="https://cdn.x/a.js"></script><link rel="stylesheet" '
            'href="//fonts.y/b.css"><script src="reveal.js/dist/reveal.js"></script>'
            '<a href="https://example.org">a link is fine</a>')
    assert remote_refs(page) == ['<script src="https://cdn.x/a.js',
                                 '<link rel="stylesheet" href="//fonts.y/b.css']


def test_handout_and_deck_load_nothing_over_the_network():
    nb = _nb()
    nb.cells.append(nbformat.v4.new_markdown_cell("The loss $-\\log \\sigma(r_c - r_r)$."))
    for page in (handouts.handout_html(nb), slides.deck_html(nb)):
        assert not remote_refs(page), remote_refs(page)
        assert "$-\\log \\sigma(r_c - r_r)$" in page  # left for MathJax to draw
    assert f'<script src="{slides.MATHJAX_SRC}">' in slides.deck_html(nb)


def test_npm_tarball_refuses_bytes_that_do_not_match_the_pin(tmp_path):
    fake = web_assets.NpmPackage("mathjax", "0.0.0", "not-the-sha512")
    (tmp_path / fake.tarball).write_bytes(b"not a tarball")
    with pytest.raises(RuntimeError, match="does not match mathjax 0.0.0's sha512"):
        web_assets.npm_tarball(fake, tmp_path)
    assert fake.url == "https://registry.npmjs.org/mathjax/-/mathjax-0.0.0.tgz"


def test_handout_carries_mathjax_inline():
    """With a cache, MathJax is inside the page (fetched once from npm, checked)."""
    cache = outputs_root() / ".cache"  # the browser tests' too
    try:
        web_assets.mathjax_js(cache)
    except RuntimeError as err:
        pytest.skip(f"MathJax could not be fetched: {err}")
    page = handouts.handout_html(_nb(), cache=cache)
    assert not remote_refs(page) and "window.MathJax = {" in page
    assert page.count("<script") == page.count("</script>")
    assert len(page) > 2_000_000  # the whole of tex-svg-full.js
