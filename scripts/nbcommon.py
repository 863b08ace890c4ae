import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

SETUP = '''import time
t0 = time.time()

from rlhf_lessons.config import LessonConfig
from rlhf_lessons.utils import get_device, seed_everything

cfg = LessonConfig.from_env()
device = get_device(cfg)
seed_everything(cfg.seed)
print("preset:", cfg.preset, "| data source:", cfg.source)'''


def build(cells, path):
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                       "name": "python3"},
        "language_info": {"name": "python"},
    }
    out = []
    for kind, text in cells:
        text = text.strip("\n")
        if kind == "md":
            out.append(new_markdown_cell(text))
        else:
            for line in text.splitlines():
                assert len(line) <= 79, f"{path}: line too long: {line!r}"
            out.append(new_code_cell(text))
    nb.cells = out
    for i, c in enumerate(nb.cells):
        c.id = f"cell-{i:02d}"  # stable ids: regenerating gives a clean diff
    nbformat.validate(nb)
    nbformat.write(nb, path)
    n_code = sum(k == "code" for k, _ in cells)
    print(path, len(cells), "cells,", n_code, "code")
