"""Tier 3: the notebooks as a learner meets them, in JupyterLab, in a real browser.

A JupyterLab server (127.0.0.1, a free port, a token) serves filled copies of the
lessons (exercises replaced by their solutions, like ``make run``) in the fast
preset; Debian's Chromium, driven by Playwright, runs every cell, fails on any cell
error or browser console error, then acts as a learner on each widget and checks
that what the page shows changes. The offline handout and slide deck are opened
with the network cut off. Screenshots go to ``<outputs root>/browser/``.

Needs ``apt-get install chromium`` and ``pip install playwright`` (no browser
download: the system Chromium is used). Without them the tests skip, unless
``RLHF_LESSONS_REQUIRE_BROWSER=1`` (CI), where they fail.

Adding a notebook or a widget: add a row to ``CASES`` (notebook stem -> learner
actions); an action is a function ``(page, shot) -> None`` that finds its widget by
a line of the cell's source (:func:`widget_cell`) and asserts on the page.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from rlhf_lessons.course import slides, web_assets
from rlhf_lessons.course.runner import (
    NOTEBOOKS_DIR,
    execute_notebook,
    fill_exercises,
    outputs_root,
    solutions_for,
    tagged,
)

pytestmark = pytest.mark.browser

HOW_TO_GET = ("browser tests need Chromium and Playwright: `apt-get install chromium` "
              "and `pip install playwright` (no `playwright install`: the system "
              "Chromium is used); set RLHF_LESSONS_CHROMIUM to use another binary")
CHROMIUM = os.environ.get("RLHF_LESSONS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
RUN_ALL_TIMEOUT_S = 900       # notebook 04 trains PPO in the browser's kernel
WIDGET_TIMEOUT_S = 300        # one widget callback (04's "run PPO" trains again)

# Console messages that are not the course's fault, each with why it is harmless.
HARMLESS_CONSOLE = (
    # JupyterLab asks the server for a favicon / optional extension endpoints that
    # this offline server does not serve; the page works without them.
    re.compile(r"Failed to load resource: the server responded with a status of 404"),
)


# --------------------------------------------------------------------------
# Learner actions, one per widget
# --------------------------------------------------------------------------
def widget_cell(page, source_line: str):
    """The code cell whose source contains ``source_line`` (exactly one)."""
    cells = page.locator(f"{PANEL} .jp-CodeCell").filter(has_text=source_line)
    assert cells.count() == 1, f"{cells.count()} cells contain {source_line!r}"
    cell = cells.first
    cell.scroll_into_view_if_needed()
    return cell


def _wait_text_change(locator, before: str, what: str, timeout_s: float = WIDGET_TIMEOUT_S,
                      until: str | None = None):
    """The locator's text once it differs from ``before`` (and, with ``until``, once it
    matches that regex too: a widget may print a progress line before its result)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = locator.inner_text()
        if now.strip() and now != before and (until is None or re.search(until, now)):
            return now
        time.sleep(0.25)
    raise AssertionError(f"{what}: the page still shows {before[:200]!r} after {timeout_s} s")


def pair_browser(page, shot):
    """01: move the pair slider one step, then search (a projector-safe word); the
    shown pair changes."""
    cell = widget_cell(page, "widgets.make_pair_browser(df, show_all=")
    view = cell.locator(".widget-html-content").first
    before = view.inner_text()
    assert re.search(r"Pair 1 of \d+", before), f"pair browser starts at {before[:120]!r}"
    cell.locator(".widget-slider .noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    moved = _wait_text_change(view, before, "pair slider")
    assert re.search(r"Pair 2 of \d+", moved), f"after one slider step: {moved[:120]!r}"
    shot("01-pair-browser-slider")
    search = cell.locator(".widget-text input").first
    search.fill("recipe")
    search.press("Enter")
    found = _wait_text_change(view, moved, "pair search")
    total = int(re.search(r"Pair \d+ of (\d+)", found).group(1))
    assert total < int(re.search(r"Pair \d+ of (\d+)", before).group(1)), found[:200]
    assert "recipe" in found.lower(), f"the pair found does not mention 'recipe': {found[:300]!r}"
    shot("01-pair-browser-search")


def _judge_numbers(text: str) -> tuple[float, float, float]:
    m = re.search(r"score A = ([-+.\d]+)\s+score B = ([-+.\d]+)\s+P\(A better\) = ([.\d]+)", text)
    assert m, f"the judge duel shows no scores: {text[:200]!r}"
    return float(m.group(1)), float(m.group(2)), float(m.group(3))


def judge_duel(page, shot):
    """03: type two new answers, press Judge; both scores and P(A better) change."""
    cell = widget_cell(page, "make_judge_widget(judge, tok")
    out = cell.locator(".widget-output").first
    before = out.inner_text()
    old = _judge_numbers(before)
    boxes = cell.locator(".widget-textarea textarea")
    assert boxes.count() == 3, f"judge duel has {boxes.count()} text boxes, expected 3"
    boxes.nth(1).fill("Sure! Here is a joke: why did the chicken cross the road? "
                      "To get to the other side.")
    boxes.nth(2).fill("No.")
    cell.get_by_role("button", name="Judge").click()
    new = _judge_numbers(_wait_text_change(out, before, "judge duel"))
    changed = [name for name, a, b in zip(("score A", "score B", "P(A better)"), old, new)
               if a != b]
    assert len(changed) == 3, f"judge duel: only {changed} changed ({old} -> {new})"
    shot("03-judge-duel")


def kl_explorer(page, shot):
    """04: raise the KL coefficient one step, press run PPO; a new curve is drawn."""
    cell = widget_cell(page, "make_kl_explorer(")
    out = cell.locator(".widget-output").first
    img = out.locator("img").first
    src_before, text_before = img.get_attribute("src"), out.inner_text()
    beta_before = re.search(r"beta=([.\deE+-]+)", text_before).group(1)
    cell.locator(".widget-slider .noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    cell.get_by_role("button", name="run PPO").click()
    # the run's own line ("computed the PPO run at beta = ... now") comes first
    text_after = _wait_text_change(out, text_before, "KL explorer",
                                   until=r"beta=[.\deE+-]+ \(")
    beta_after = re.search(r"beta=([.\deE+-]+)", text_after).group(1)
    assert float(beta_after) > float(beta_before), (beta_before, beta_after)
    src_after = img.get_attribute("src")
    assert src_after and src_after != src_before, "the KL explorer's plot did not change"
    shot("04-kl-explorer")


def be_the_rater(page, shot):
    """05: label two pairs (A, then B); the count and the shown pair move on, and
    re-running the results cell tallies the two clicks (and no invented ones)."""
    cell = widget_cell(page, "make_rater_widget(items, labels)")
    count = cell.locator(".widget-label").first
    assert re.match(r"0 of \d+ labelled", count.inner_text()), count.inner_text()
    view = cell.locator(".widget-output").first
    before = view.inner_text()
    assert "Pair 1 of" in before, f"the rater widget starts at {before[:120]!r}"
    cell.get_by_role("button", name="A is better").click()
    after_one = _wait_text_change(view, before, "rater widget")
    assert "Pair 2 of" in after_one, after_one[:120]
    cell.get_by_role("button", name="B is better").click()
    _wait_text_change(view, after_one, "rater widget")
    assert count.inner_text().startswith("2 of "), count.inner_text()
    shot("05-be-the-rater")
    results = widget_cell(page, "mine = rater_results(items, labels, judge_picks)")
    out = results.locator(".jp-OutputArea").first
    shown = out.inner_text()
    results.click()
    page.keyboard.press("Shift+Enter")
    tally = _wait_text_change(out, shown, "rater results")
    assert re.search(r"\b2 of \d+", tally), f"the results cell does not count 2 labels: {tally[:300]!r}"


def _slide(page, cell, out, key: str, pattern: str, what: str) -> tuple[float, float]:
    """Press ``key`` (ArrowRight / ArrowLeft) on a cell's slider; the number ``pattern``
    captures in the output must move that way and the plot be redrawn. Returns
    (before, after)."""
    img = out.locator("img").first
    src_before, text_before = img.get_attribute("src"), out.inner_text()
    found = re.search(pattern, text_before)
    assert found, f"{what} shows no {pattern!r}: {text_before[:200]!r}"
    cell.locator(".widget-slider .noUi-handle").first.focus()
    page.keyboard.press(key)
    text_after = _wait_text_change(out, text_before, what)
    after = re.search(pattern, text_after)
    assert after, f"{what} shows no {pattern!r} after the move: {text_after[:200]!r}"
    before_v, after_v = float(found.group(1)), float(after.group(1))
    assert (after_v > before_v) == (key == "ArrowRight"), f"{what}: {before_v} -> {after_v}"
    src_after = img.get_attribute("src")
    assert src_after and src_after != src_before, f"{what}: the plot did not change"
    return before_v, after_v


def group_size(page, shot):
    """07: one step left on G (it starts at the largest group in the fast preset); the
    share of all-equal groups is recomputed and redrawn."""
    cell = widget_cell(page, "make_group_size_widget(")
    out = cell.locator(".widget-output").first
    g0, g1 = _slide(page, cell, out, "ArrowLeft", r"G = (\d+):", "group-size widget")
    assert g1 == g0 - 1, (g0, g1)
    shot("07-group-size")


def dpo_beta(page, shot):
    """07: one step right on β; the loss, gradient weight and plot follow."""
    cell = widget_cell(page, "make_dpo_beta_widget(")
    out = cell.locator(".widget-output").first
    _slide(page, cell, out, "ArrowRight", r"β = ([.\deE+-]+):", "DPO β widget")
    shot("07-dpo-beta")


def formulas_rendered(page, shot):
    """06: every formula of the lesson is typeset by JupyterLab's MathJax; no markdown
    cell is left showing raw TeX ($...$, \\frac, \\beta)."""
    md = page.locator(f"{PANEL} .jp-MarkdownCell .jp-RenderedMarkdown")
    deadline = time.monotonic() + 60
    while True:
        raw = [t[:120] for t in md.all_inner_texts()
               if re.search(r"\$[^$\s][^$]*\$|\\(frac|beta|pi|sum|mathrm)\b", t)]
        typeset = page.locator(f"{PANEL} .jp-RenderedMarkdown mjx-container").count()
        if not raw or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not raw, f"markdown cells with raw TeX: {raw[:3]}"
    assert typeset >= 10, f"only {typeset} typeset formulas in notebook 06"
    shot("06-formulas")


@dataclass(frozen=True)
class Case:
    stem: str
    actions: tuple[Callable, ...]


CASES = (
    Case("01_browse_preference_data", (pair_browser,)),
    Case("03_reward_model_the_judge", (judge_duel,)),
    Case("04_ppo_with_the_judge", (kl_explorer,)),
    Case("05_what_raters_and_judges_pay_for", (be_the_rater,)),
    Case("06_what_optimisation_does_with_it", (formulas_rendered,)),
    Case("07_beyond_ppo", (group_size, dpo_beta)),
)


# --------------------------------------------------------------------------
# Fixtures: the tools, a JupyterLab server, a browser
# --------------------------------------------------------------------------
def _need(ok: bool, why: str) -> None:
    if ok:
        return
    if os.environ.get("RLHF_LESSONS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{why}; RLHF_LESSONS_REQUIRE_BROWSER=1. {HOW_TO_GET}")
    pytest.skip(f"{why}: {HOW_TO_GET}")


@pytest.fixture(scope="module")
def playwright_api():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    _need(sync_playwright is not None, "playwright is not installed")
    _need(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright_api):
    b = playwright_api.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture(scope="module")
def shots_dir():
    path = Path(os.environ["RLHF_LESSONS_OUTPUTS"]) / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(folder: Path) -> None:
    """Lab settings: every cell in the DOM (no windowing), no news/update checks, no
    autosave (with jupytext it would also write a .py twin of each served copy)."""
    settings = {
        "docmanager-extension/plugin": {"autosave": False},
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
    }
    for name, value in settings.items():
        ext, plugin = name.split("/")
        path = folder / "@jupyterlab" / ext / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


def _serve_copies(folder: Path) -> None:
    """Filled copies of the CASES notebooks (exercise stubs -> solutions)."""
    folder.mkdir(parents=True)
    for case in CASES:
        src = NOTEBOOKS_DIR / f"{case.stem}.ipynb"
        nb = nbformat.read(src, as_version=4)
        if tagged(nb.cells, "exercise"):
            fill_exercises(nb, nbformat.read(solutions_for(src), as_version=4))
        nbformat.write(nb, folder / src.name)


@dataclass
class Lab:
    url: str
    token: str

    def api(self, method: str, path: str):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(playwright_api, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    served, settings = tmp / "notebooks", tmp / "settings"
    _serve_copies(served)
    _write_settings(settings)
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update({
        "RLHF_LESSONS_FAST": "1",
        "RLHF_LESSONS_OUTPUTS": os.environ["RLHF_LESSONS_OUTPUTS"],
        "PYTHONPATH": os.pathsep.join(filter(None, [str(NOTEBOOKS_DIR.parent),
                                                    env.get("PYTHONPATH")])),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
    })
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [str(jupyter) if jupyter.exists() else "jupyter", "lab", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           "--LabApp.extension_manager=readonly",
           f"--ServerApp.root_dir={served}", f"--LabApp.user_settings_dir={settings}",
           f"--LabApp.workspaces_dir={tmp / 'workspaces'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI containers run as root
    log = open(tmp / "lab.log", "w")  # noqa: SIM115 - closed in the finaliser
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Lab(f"http://127.0.0.1:{port}", token)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited ({proc.returncode}):\n"
                            f"{(tmp / 'lab.log').read_text()[-2000:]}")
            try:
                server.api("GET", "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("jupyter lab did not answer in 120 s")
                time.sleep(0.5)
        yield server
    finally:
        try:
            server.api("POST", "/api/shutdown")  # also shuts its kernels down
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def watch_console(page) -> list[str]:
    """Every console error and uncaught page error, minus ``HARMLESS_CONSOLE``."""
    errors: list[str] = []

    def on_console(msg):
        if msg.type == "error" and not any(p.search(msg.text) for p in HARMLESS_CONSOLE):
            errors.append(f"console: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    return errors


# --------------------------------------------------------------------------
# Running a notebook in the page
# --------------------------------------------------------------------------
# Everything is looked up in the notebook tab on show, never in a hidden one.
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
CELL_STATE_JS = """(sel) => {
  const panel = document.querySelector(sel);
  if (!panel) return {prompts: [], status: null, errors: 0};
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
      .map(p => p.textContent.trim());
  const ind = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  return {prompts, status: ind ? ind.getAttribute('data-status') : null,
          errors: panel.querySelectorAll(
              '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').length};
}"""


def wait_kernel_idle(page, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = page.evaluate(CELL_STATE_JS, PANEL)
        queued = sum(p in ("[*]:", "[*]") for p in state["prompts"])
        done = all(re.fullmatch(r"\[\d+\]:?", p) for p in state["prompts"])
        if state["status"] == "idle" and not queued and (done or state["errors"]):
            return state
        time.sleep(1)
    raise AssertionError(f"the notebook was still running after {timeout_s} s: {state}")


def cell_errors(page) -> list[str]:
    """Tracebacks and error outputs on the page (stderr output with a traceback)."""
    texts = page.locator(
        f'{PANEL} .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    return [t for t in texts.all_inner_texts()
            if "Traceback" in t or re.search(r"^\w*(Error|Exception)\b", t, re.M)]


def run_all(page, lab: Lab, stem: str) -> None:
    # ?reset: a fresh workspace, so the tabs of the notebook before are not reopened
    page.goto(f"{lab.url}/lab/tree/{stem}.ipynb?reset&token={lab.token}")
    page.locator(f"{PANEL} .jp-Notebook").first.wait_for(timeout=120_000)
    # The page's indicator says "idle" before a kernel exists: ask the server for a
    # started kernel that this page is connected to, then for the page's "Idle".
    deadline = time.monotonic() + 180
    while not any(x["path"] == f"{stem}.ipynb" and x["kernel"].get("connections", 0) >= 1
                  and x["kernel"].get("execution_state") == "idle"
                  for x in lab.api("GET", "/api/sessions") or []):
        assert time.monotonic() < deadline, "no kernel connected to the page in 180 s"
        time.sleep(1)
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\|\s*Idle")).first.wait_for(
        timeout=60_000)
    # The learner's way: Run menu > Run All Cells.
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item").filter(
        has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))).click()
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{PANEL} .jp-CodeCell .jp-InputPrompt')]"
        ".some(p => p.textContent.includes('*'))", timeout=60_000)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_notebook_runs_in_jupyterlab_and_its_widgets_respond(case, lab, browser, shots_dir):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = watch_console(page)

    def shot(name: str) -> None:
        page.screenshot(path=str(shots_dir / f"{name}.png"))

    try:
        run_all(page, lab, case.stem)
        wait_kernel_idle(page, RUN_ALL_TIMEOUT_S)
        page.screenshot(path=str(shots_dir / f"{case.stem}-run-all.png"), full_page=True)
        bad = cell_errors(page)
        assert not bad, f"{case.stem}: cell errors in the browser:\n" + "\n".join(bad)[:3000]
        for action in case.actions:
            action(page, shot)
        assert not errors, f"{case.stem}: browser console errors:\n" + "\n".join(errors)
    except BaseException:
        page.screenshot(path=str(shots_dir / f"{case.stem}-FAILED.png"))
        raise
    finally:
        page.close()
        for session in lab.api("GET", "/api/sessions") or []:
            lab.api("DELETE", f"/api/sessions/{session['id']}")


# --------------------------------------------------------------------------
# Offline handout and slide deck
# --------------------------------------------------------------------------
def _offline_page(browser):
    """A page with the network cut: only file:// and data: URLs load."""
    context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
    blocked: list[str] = []

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return context, context.new_page(), blocked


TINY_NOTEBOOK = [
    "import pandas as pd\nfrom rlhf_lessons.course import widgets",
    "df = pd.DataFrame({'subset': ['helpful-base'] * 2, 'row': [0, 1],\n"
    "    'prompt': ['\\n\\nHuman: Tell me a joke.\\n\\nAssistant:'] * 2,\n"
    "    'chosen': [' Why did the hen cross?', ' Knock knock.'],\n"
    "    'rejected': [' No.', ' Go away.']})\nwidgets.make_pair_browser(df)",
    "widgets.make_plot_demo(margin=2.0)",
]


def test_handout_shows_widgets_and_plots_offline(browser, shots_dir, tmp_path):
    """An executed notebook's .html (as `make run` writes it) opened with no network:
    the widgets' text and every plot show."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in TINY_NOTEBOOK])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "tiny_widgets.ipynb"
    nbformat.write(nb, path)
    run = execute_notebook(path, out_dir=tmp_path / "out", timeout=300,
                           env={"RLHF_LESSONS_OUTPUTS": str(outputs_root()),
                                # conftest's Agg would print figures as text
                                "MPLBACKEND": "module://matplotlib_inline.backend_inline"})
    assert run.ok, run.error
    handout = tmp_path / "out" / "tiny_widgets.html"
    text = handout.read_text(encoding="utf-8")
    assert "embed-amd" not in text and "require.min.js" not in text
    context, page, blocked = _offline_page(browser)
    errors = watch_console(page)
    try:
        page.goto(handout.as_uri())
        page.wait_for_load_state("load")
        body = page.locator("body").inner_text()
        for shown in ("Pair 1 of 2", "Why did the hen cross?", "Assistant (rejected)",
                      "subset", "search", "margin"):
            assert shown in body, f"the offline handout does not show {shown!r}"
        images = page.evaluate("() => [...document.images].map(i => [i.naturalWidth, i.alt])")
        assert images and all(w > 0 for w, _ in images), f"broken images: {images}"
        page.screenshot(path=str(shots_dir / "handout-offline.png"), full_page=True)
    finally:
        context.close()
    assert not blocked, f"the handout fetched {blocked}"
    assert not errors, errors


def test_slide_deck_opens_offline_and_pages(browser, shots_dir, tmp_path):
    """A deck of notebook 01 (unexecuted) opened with no network pages right and down."""
    nb = nbformat.read(NOTEBOOKS_DIR / f"{CASES[0].stem}.ipynb", as_version=4)
    try:
        deck = slides.write_deck(nb, tmp_path / "slides", CASES[0].stem,
                                 cache=outputs_root() / ".cache")
    except RuntimeError as err:
        _need(False, f"reveal.js could not be fetched: {err}")
    context, page, blocked = _offline_page(browser)
    try:
        page.goto(deck.as_uri())
        page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=30_000)
        n = page.evaluate("() => Reveal.getTotalSlides()")
        assert n >= 5, f"the deck has {n} slides"
        start = page.evaluate("() => Reveal.getIndices()")
        page.keyboard.press("ArrowRight")
        after = page.evaluate("() => Reveal.getIndices()")
        assert after["h"] == start["h"] + 1, (start, after)
        stack = page.evaluate(
            "() => Reveal.getHorizontalSlides().findIndex("
            "s => s.querySelectorAll(':scope > section').length > 1)")
        assert stack >= 0, "no section of the deck has sub-slides"
        page.evaluate(f"() => Reveal.slide({stack}, 0)")
        page.keyboard.press("ArrowDown")
        down = page.evaluate("() => Reveal.getIndices()")
        assert (down["h"], down["v"]) == (stack, 1), down
        page.screenshot(path=str(shots_dir / "slides-offline.png"))
    finally:
        context.close()
    assert not blocked, f"the deck fetched {blocked}"


# Two formulas, one inline and one displayed, as the notebooks write them.
FORMULAS = (r"The loss is $-\log \sigma(r_c - r_r)$, and" "\n\n"
            r"$$\mathrm{ECE} = \sum_b \frac{n_b}{N}\,|\mathrm{acc}_b - \mathrm{conf}_b|.$$")
MATH_STATE_JS = """async () => {
  await MathJax.startup.promise;
  const md = [...document.querySelectorAll('.jp-RenderedMarkdown')];
  // in the cells only: reveal.js copies a slide's text into an aria-status div
  return {drawn: md.reduce((n, e) => n + e.querySelectorAll('mjx-container svg').length, 0),
          text: md.map(e => {
            const c = e.cloneNode(true);
            c.querySelectorAll('mjx-container').forEach(m => m.remove());
            return c.textContent; }).join('\\n')};
}"""


def test_formulas_render_offline_in_handout_and_deck(browser, shots_dir, tmp_path):
    """An executed notebook's handout and deck, opened with no network: MathJax (in
    the page, or beside the deck) draws both formulas and no TeX is left."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Formulas"),
                                         nbformat.v4.new_markdown_cell(FORMULAS),
                                         nbformat.v4.new_code_cell("print(1 + 1)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "formulas.ipynb"
    nbformat.write(nb, path)
    cache = outputs_root() / ".cache"
    try:
        web_assets.mathjax_js(cache)
    except RuntimeError as err:
        _need(False, f"MathJax could not be fetched: {err}")
    run = execute_notebook(path, out_dir=tmp_path / "out", timeout=300,
                           env={"RLHF_LESSONS_OUTPUTS": str(outputs_root())})
    assert run.ok, run.error
    executed = nbformat.read(tmp_path / "out" / "formulas.ipynb", as_version=4)
    deck = slides.write_deck(executed, tmp_path / "slides", "formulas", cache=cache)
    for name, page_path in (("handout", tmp_path / "out" / "formulas.html"), ("deck", deck)):
        context, page, blocked = _offline_page(browser)
        errors = watch_console(page)
        try:
            page.goto(page_path.as_uri())
            page.wait_for_function("() => window.MathJax && MathJax.startup", timeout=30_000)
            state = page.evaluate(MATH_STATE_JS)
            page.screenshot(path=str(shots_dir / f"formulas-{name}.png"))
        finally:
            context.close()
        assert state["drawn"] == 2, f"the {name} drew {state['drawn']} of 2 formulas"
        left = [t for t in ("$", "\\log", "\\frac") if t in state["text"]]
        assert not left, f"the {name} still shows TeX {left}: {state['text']!r}"
        assert not blocked, f"the {name} fetched {blocked}"
        assert not errors, errors
