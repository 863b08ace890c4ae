"""Small helpers every module uses: device and precision, seeding, atomic writes,
the learning-rate schedule, progress bars, text cut to a width. Taught in notebook 00 (setup check).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import tqdm.notebook as tqdm_notebook_module
from tqdm.auto import tqdm
from tqdm.notebook import tqdm as tqdm_notebook

from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.phases import phase

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

_ANNOUNCED: set[str] = set()


def say_once(message: str) -> None:
    """Print a one-line notice once per process (e.g. "falling back to data/")."""
    if message not in _ANNOUNCED:
        _ANNOUNCED.add(message)
        print(message, flush=True)


def cut(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters (an ellipsis marks a cut).

    Plain text: escape it (``html.escape``) where it goes into HTML; tables escape
    their cells themselves."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def get_device(cfg: LessonConfig | None = None, verbose: bool = True) -> torch.device:
    """cuda, then mps, then cpu. ``cfg.device`` (RLHF_LESSONS_DEVICE) overrides it."""
    wanted = cfg.device if cfg is not None else None
    if wanted:
        dev = torch.device(wanted)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"device={wanted!r} was asked for (RLHF_LESSONS_DEVICE) "
                "but torch.cuda.is_available() is False"
            )
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"device={wanted!r} was asked for but MPS is not available")
        why = "as asked"
    elif torch.cuda.is_available():
        dev, why = torch.device("cuda"), "a CUDA GPU was found"
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        dev, why = torch.device("mps"), "Apple MPS was found"
    else:
        dev, why = torch.device("cpu"), "no GPU found"
    if verbose:
        say_once(f"device: {dev} ({why}); precision: {precision_name(dev)}")
    return dev


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX, where bf16 matmuls run natively.

    Elsewhere torch emulates bf16 on the CPU and it is slower than fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def use_bf16(device: torch.device) -> bool:
    """Whether to train under bf16 autocast on ``device``."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def precision_name(device: torch.device) -> str:
    return "bf16 autocast" if use_bf16(device) else "fp32"


def autocast(device: torch.device):
    """bf16 autocast where the hardware runs it natively, otherwise a no-op context."""
    if use_bf16(device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int = 0) -> None:
    """Seed random, numpy and torch (call again right before any sampling cell)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def file_mode(folder: bool = False) -> int:
    """The permissions a plain ``open`` would give (the umask applied): temporary
    files are created 0600, and a saved artefact should not stay that way."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


LEFTOVER = re.compile(r"^\..+\.(?:old)?[A-Za-z0-9_]{8}$")  # our temporary names


def remove_leftovers(root: Path, older_than_s: float = 600.0) -> int:
    """Delete the hidden temporary files and folders that a killed save left under
    ``root`` (two levels deep), if older than ``older_than_s`` (a save running now
    in another process is left alone). Returns how many went."""
    root = Path(root)
    if not root.is_dir():
        return 0
    n, now = 0, time.time()
    for p in [*root.glob(".*"), *root.glob("*/.*"), *root.glob("*/*/.*")]:
        try:
            if LEFTOVER.match(p.name) and now - p.lstat().st_mtime > older_than_s:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
                n += 1
        except OSError:
            continue
    return n


@contextlib.contextmanager
def file_lock(path: Path):
    """Hold an exclusive lock on ``<path>.lock`` (POSIX advisory) for a
    read-modify-write of ``path`` that several processes may share."""
    lock = Path(path).with_name(Path(path).name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        if fcntl is None:  # Windows: no advisory locks; runs there are one at a time
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` through a temp file and ``os.replace`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.fchmod(fd, file_mode())
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, default=_jsonable) + "\n").encode())


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def adamw(params, **kwargs) -> torch.optim.AdamW:
    """AdamW, fused into one kernel on a CPU or CUDA device (the same update; on a
    CPU the per-tensor loop costs about 10x more for these small models). Every
    trainer of the course makes its optimizer here."""
    params = list(params)
    fused = {p.device.type for p in params} <= {"cpu", "cuda"}
    return torch.optim.AdamW(params, fused=fused, **kwargs)


def optimizer_step(loss: torch.Tensor, optimizer, params, max_grad_norm: float = 0.0) -> float:
    """One update: backward, clip the gradient norm (when ``max_grad_norm`` > 0),
    step, clear the gradients. Returns the norm before clipping (0.0 unclipped).

    Pretraining, SFT, the judge and PPO all take their steps through here; its two
    halves are the phases ``backward`` and ``optimizer`` (:mod:`rlhf_lessons.core.phases`).
    """
    with phase("backward"):
        loss.backward()
    with phase("optimizer"):
        norm = 0.0
        if max_grad_norm and max_grad_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return norm


# What to do about a checkpoint that cannot be read, by path (course.artefacts says
# whether it came from data/runs/); otherwise: delete it.
CHECKPOINT_FIXES: dict[Path, str] = {}


def load_checkpoint(path, settings=None, what: str = "training", device="cpu") -> dict | None:
    """The state a trainer saved at ``path``, or None when there is none to resume.

    With ``settings``, a checkpoint made with other settings is not resumed: one
    line says so and None is returned. A file that cannot be read (truncated,
    garbled) raises an error that names it.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds; name the file
        fix = CHECKPOINT_FIXES.get(path, "Delete it to start afresh")
        raise RuntimeError(f"{path}: cannot read this {what} checkpoint ({type(err).__name__}:"
                           f" {err}). {fix}.") from err
    if settings is not None and (not isinstance(state, dict)
                                 or state.get("settings") != settings):
        print(f"a {what} checkpoint with other settings exists ({path.name}); starting afresh")
        return None
    return state


def linear_schedule(step: int, total: int, warmup: int = 0, constant: bool = False) -> float:
    """The lr multiplier at ``step`` (0-based) of ``total``: a linear warm-up over
    ``warmup`` steps, then linear decay to 0 at ``total`` (or flat if ``constant``).

    SFT, the judge and PPO all use it (TRL's default schedule); pretraining has its
    own cosine schedule.
    """
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if constant:
        return warm
    return warm * max(0.0, 1.0 - step / max(1, total))


class Timer:
    """``with Timer() as t: ...; t.seconds``: wall time of a block."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


class _SavedBar(tqdm_notebook):
    """tqdm's notebook widget bar, whose saved output is its last state.

    tqdm shows the widget with ``display``; the output's text form, what an
    executed ``.ipynb`` keeps for viewers without widgets, is the bar at that
    moment ("PPO: 0%| 0/16") for ever. This bar is shown with a display id, and
    ``close`` replaces the output by the finished bar (with ``leave=False``, by
    nothing), so a headless run saves no partial bar.
    """

    def __init__(self, *args, **kwargs):
        self._handle = None
        kwargs["display"] = False  # shown by display() below, with a display id
        super().__init__(*args, **kwargs)
        if not self.disable and self.delay <= 0:
            self.display()

    def display(self, msg=None, pos=None, close=False, bar_style=None,
                check_delay=True):
        super().display(msg, pos, close=close, bar_style=bar_style, check_delay=False)
        if check_delay and not close and not self.displayed:  # past ``delay``
            # IPython's display, as tqdm.notebook imported it (core does not present)
            self._handle = tqdm_notebook_module.display(self.container, display_id=True)
            self.displayed = True

    def close(self):
        super().close()
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.update(self.container if self.leave else {"text/plain": ""},
                          raw=not self.leave)


def progress(iterable=None, **kwargs):
    """A tqdm progress bar (notebook widget in Jupyter, text elsewhere).

    It appears only once the work has taken a second (``delay``): a step that is
    over sooner leaves no bar in the notebook. In a notebook, the saved output
    of a closed bar is its final state (:class:`_SavedBar`).
    """
    kwargs.setdefault("delay", 1.0)
    kwargs.setdefault("mininterval", 1.0)
    kwargs.setdefault("dynamic_ncols", True)
    if issubclass(tqdm, tqdm_notebook):  # tqdm.auto chose the widget
        return _SavedBar(iterable, **kwargs)
    return tqdm(iterable, **kwargs)
