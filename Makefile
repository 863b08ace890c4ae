# rlhf-lessons: every target sets up .venv itself on a fresh machine.
#   make run    execute every notebook headless (default offline preset) -> outputs/
#   make test   the whole test suite (notebooks run in the fast preset)
#   make lab    JupyterLab on notebooks/
#   make bench  speed against Hugging Face TRL on the shared peer workload
#   make sync   after editing a lesson: pair each notebook with its .py twin, strip outputs
#   make slides a reveal.js deck per notebook -> outputs/slides/ (opens offline)
#   make runtime-table   after `make run`: rewrite README's run-time table from outputs/
#   make findings        after `make run`: rewrite docs/findings.md's claims from outputs/
#   make browser-test    only the browser tests (Chromium + Playwright; part of make test)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lab bench fast sync clean slides runtime-table findings browser-test

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "setting up $(VENV) (first run only: a few minutes)"
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	$(PY) scripts/run_notebooks.py

fast: $(STAMP)
	RLHF_LESSONS_FAST=1 $(PY) scripts/run_notebooks.py

test: $(STAMP)
	$(PY) -m pytest -q

slides: $(STAMP)
	$(PY) scripts/make_slides.py

runtime-table: $(STAMP)
	$(PY) scripts/runtime_table.py

findings: $(STAMP)
	$(PY) scripts/findings_table.py

browser-test: $(STAMP)
	$(PY) -m pytest -q -m browser

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	$(PY) benchmarks/run.py

sync: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/[0-9][0-9]_*.ipynb notebooks/solutions/*.ipynb
	$(VENV)/bin/nbstripout --keep-id notebooks/[0-9][0-9]_*.ipynb notebooks/solutions/*.ipynb

clean:
	rm -rf outputs
