# ---
# jupyter:
#   jupytext:
#     cell_markers: '"""'
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
"""
# 00 · Setup check

Before the lessons start, make sure your machine has everything they need.

**You will:**
- see which versions of Python and the key libraries you have;
- see which device (CPU, CUDA GPU or Apple MPS) and which precision the course
  will use;
- render one plot and one interactive widget;
- know what to do when something is missing.

**Run time:** a few seconds on a CPU or a GPU.

**Instructor's path (50 minutes):** run this notebook before the lecture, on
the machine you will project from; in class show 0.1 (the presets) and the
plot of 0.6 (5 min), then go to notebook 01. No live training.
"""

# %% [markdown]
"""
## 0.1 The setup cell

Every notebook in the course starts with the same cell. It reads the **preset**
(`fast` for tests, `default` for a laptop CPU, `gpu` for the real GPT-2), picks
the device, and seeds every random number generator.
"""

# %%
import time
t0 = time.time()

from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.utils import get_device, seed_everything

cfg = LessonConfig.from_env()
device = get_device(cfg)
seed_everything(cfg.seed)
print("preset:", cfg.preset, "| data source:", cfg.source)

# %% [markdown]
"""
## 0.2 Versions

The course was written for the versions in `requirements.txt`. Older or newer
versions usually work; if a cell fails, compare with this table first.
"""

# %%
import platform
from importlib.metadata import PackageNotFoundError, version

import pandas as pd

PACKAGES = ["torch", "transformers", "datasets", "tokenizers", "pandas",
            "matplotlib", "ipywidgets", "nbclient"]


def installed(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return "MISSING"


versions = {"python": platform.python_version()}
versions.update({name: installed(name) for name in PACKAGES})
missing = [k for k, v in versions.items() if v == "MISSING"]
print("missing:", missing or "nothing")
pd.Series(versions, name="version").to_frame()

# %% [markdown]
"""
## 0.3 Device and precision

`get_device` tries a CUDA GPU, then Apple's MPS, then the CPU
(`RLHF_LESSONS_DEVICE=cpu` forces a choice). Training runs in **bf16** where
the hardware does bf16 natively (recent NVIDIA GPUs; CPUs with AVX512-BF16 or
AMX) and in **fp32** everywhere else, because emulated bf16 is *slower*
than fp32.
"""

# %%
import torch

from rlhf_lessons.core.utils import cpu_has_native_bf16, precision_name

print("device:        ", device)
print("precision:     ", precision_name(device))
print("CUDA available:", torch.cuda.is_available())
print("native CPU bf16:", cpu_has_native_bf16())
print("torch threads: ", torch.get_num_threads())

# %% [markdown]
"""
## 0.4 The preset

Everything that sets a size (models, steps, how many rows to read) lives in the
config, so a notebook never hard-codes one. Here is what your preset chose.
"""

# %%
pd.Series({
    "preset": cfg.preset,
    "data source": cfg.source,
    "model": cfg.model.name,
    "layers x width": f"{cfg.model.n_layer} x {cfg.model.n_embd}",
    "rows per subset (0 = all)": cfg.max_rows_per_subset,
    "PPO updates": cfg.ppo.n_updates,
    "retrain saved runs (RLHF_LESSONS_RETRAIN)": cfg.retrain,
}, name="value").to_frame()

# %% [markdown]
"""
## 0.5 Is the data there?

The four HH-RLHF test files ship with the course in `data/`, so the lessons
work offline. The package knows where they are; we only ask it.
"""

# %%
from rlhf_lessons.core import data

pd.DataFrame({
    "bundled file present": {s: data.local_hh_path(s).exists()
                             for s in data.SUBSETS},
    "rows expected": data.LOCAL_ROWS,
})

# %%
hub = data.hub_reachable() if cfg.source != "local" else False
print("Hugging Face Hub used:", hub,
      "(source=local: the bundled copy)" if cfg.source == "local" else "")

# %% [markdown]
r"""
## 0.6 One plot

All plots come from `rlhf_lessons.course.plots` and share one palette:
**chosen** and
**rejected** answers, **policy** and **reference** model always have the same
colours. The curve below is the heart of notebook 03: if a judge gives the
chosen answer a reward higher by a *margin* $m$, it says a human would prefer
it with probability

$$P(\text{chosen} \succ \text{rejected}) = \sigma(m) = \frac{1}{1+e^{-m}}.$$
"""

# %%
from rlhf_lessons.course import plots

ax = plots.plot_preference_curve(margin=1.0)

# %%
pd.Series(plots.PALETTE, name="colour").to_frame()

# %% [markdown]
r"""
### Explore

Move the slider. At which margin is the judge 90% sure? (Hint: solve
$\sigma(m) = 0.9$.) If you see only text below instead of a slider, your
Jupyter lacks the widget extension: see the list in 0.7.
"""

# %%
from rlhf_lessons.course import widgets

widgets.make_plot_demo(margin=1.0)

# %% [markdown]
"""
## 0.7 When something is missing

Each symptom, then what to do:

- **a package shows `MISSING` in 0.2**: `make lab` (it creates `.venv` and
  installs `requirements.txt`), or `pip install -r requirements.txt` in your
  environment.
- **the slider shows as text, not a widget**: `pip install ipywidgets`, then
  reload the page; in VS Code, install the Jupyter extension.
- **`pip` starts downloading a 2 GB CUDA torch on a laptop**: stop it; install
  the CPU build:
  `pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu`
  (keep the version pinned in `requirements.txt`).
- **device says `cpu` but you have an NVIDIA GPU**: check `nvidia-smi`;
  install a CUDA build of torch (see `docs/install.md`).
- **a bundled file shows `False` in 0.5**: your clone is incomplete:
  `git status`, then `git checkout -- data/`.
- **the Hub cannot be reached**: nothing: the course runs offline on the
  bundled data.
- **a lesson is too slow**: run it with `RLHF_LESSONS_FAST=1` to check it
  works, then on a GPU.
"""

# %% [markdown]
"""
## Check your understanding

1. Which device will the next notebooks use on your machine, and why that one?
2. Why does the course use fp32, not bf16, on most laptop CPUs?
3. Where do the notebooks get their sizes (model width, number of steps) from?

✏️ **Try it:** restart the kernel with `RLHF_LESSONS_FAST=1` set in the
environment and run this notebook again. Which rows of the table in 0.4 change?
"""

# %%
from rlhf_lessons.course.artefacts import update_metrics

m = update_metrics("00_setup_check", cfg, wall_s=round(time.time() - t0, 2),
                   device=str(device), precision=precision_name(device),
                   missing_packages=missing)
print(f"saved outputs/00_setup_check/metrics.json ({m['wall_s']} s)")
