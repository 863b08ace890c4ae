"""Can the Hugging Face Hub be reached? One bounded probe per process, and clear errors.

Used by :mod:`rlhf_lessons.core.data` (``source="hub"`` / ``"auto"``) and by anything that
loads from the Hub (e.g. the real ``gpt2``), through :func:`require_hub`.

The probe
---------
One HTTPS ``HEAD`` of the dataset's API page on the Hub (``HF_ENDPOINT`` honoured),
through the same HTTP client and proxy settings as ``huggingface_hub``. A TCP connect
is not enough: behind an intercepting proxy the connection opens and TLS then fails,
and the datasets library would retry for half a minute per subset. The probe:

- answers ``False`` at once when ``HF_HUB_OFFLINE=1`` (or ``HF_DATASETS_OFFLINE=1``);
- otherwise takes at most ``timeout`` seconds in all (DNS included: it runs in a daemon
  thread), never retries and logs nothing;
- counts any HTTP answer below 500 as reachable (TLS worked and the Hub answered);
- is cached for the process, so a second subset or notebook cell asks again for free.
"""

from __future__ import annotations

import os
import threading

HUB_PROBE_PATH = "/api/datasets/Anthropic/hh-rlhf"
PROBE_TIMEOUT_S = 2.5
OFFLINE_HINT = (
    "To work offline, set RLHF_LESSONS_SOURCE=local (the lessons then use the copies "
    "bundled in data/); or fix the network or proxy (HTTPS_PROXY, REQUESTS_CA_BUNDLE) "
    "so that https://huggingface.co answers."
)
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


class HubUnreachableError(ConnectionError):
    """The Hub was needed and can't be reached. The message says what to do instead."""


def _offline_var() -> str:
    for var in _OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return var
    return ""


def _probe_hub(timeout: float) -> tuple[bool, str]:
    """(reachable?, why not): one HTTPS HEAD of the Hub, no retries."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        resp = get_session().head(constants.ENDPOINT.rstrip("/") + HUB_PROBE_PATH,
                                  timeout=timeout)
    except Exception as err:  # noqa: BLE001 - DNS, refused, TLS, proxy: all mean "no"
        return False, f"{type(err).__name__}: {str(err)[:160]}"
    if resp.status_code >= 500:
        return False, f"the Hub answered HTTP {resp.status_code}"
    return True, ""


_HUB_CACHE: list[tuple[bool, str]] = []  # one (reachable, reason) per process


def hub_status(timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """(reachable?, why not, in words). Decided within ``timeout`` seconds, once."""
    var = _offline_var()
    if var:
        return False, f"{var}=1 is set"
    if _HUB_CACHE:
        return _HUB_CACHE[0]
    import huggingface_hub.utils  # noqa: F401 - imported here, not on the network's clock

    answer: list[tuple[bool, str]] = []
    t = threading.Thread(target=lambda: answer.append(_probe_hub(timeout)), daemon=True)
    t.start()
    t.join(timeout)
    status = answer[0] if answer else (False, f"no answer within {timeout:g} s")
    _HUB_CACHE[:] = [status]
    return status


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Can the Hugging Face Hub be reached? Decides within ``timeout`` seconds, never hangs.

    ``HF_HUB_OFFLINE=1`` (or ``HF_DATASETS_OFFLINE=1``) answers False at once; the
    answer is cached for the process. Notebook 00 shows it.
    """
    return hub_status(timeout)[0]


def mark_hub_unreachable(reason: str) -> None:
    """Remember for the process that the Hub failed (e.g. a load that failed after the
    probe passed), so that later loads fall back at once instead of retrying."""
    _HUB_CACHE[:] = [(False, reason)]


def require_hub(what: str) -> None:
    """Raise :class:`HubUnreachableError` unless the Hub can be reached.

    ``what`` names what needs it, e.g. ``"the pretrained gpt2"``; the message says why
    the Hub can't be reached and how to run offline. Takes at most a few seconds, once
    per process (see :func:`hub_reachable`).
    """
    ok, reason = hub_status()
    if not ok:
        raise HubUnreachableError(
            f"{what} needs the Hugging Face Hub, which can't be reached from here "
            f"({reason}). {OFFLINE_HINT}")
