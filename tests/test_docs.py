"""Every ``python`` code block of README.md, docs/tour.md and docs/guide.md runs (in a fresh
namespace, in a temporary directory). A block whose opening fence line carries ``skip`` (```` ```python skip
````) is left out; use it only for a block that trains for minutes, and say so beside it."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = ("README.md", "docs/tour.md", "docs/guide.md")
BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)


def _blocks():
    for name in FILES:
        text = (ROOT / name).read_text()
        for k, match in enumerate(BLOCK.finditer(text)):
            line = text.count("\n", 0, match.start()) + 1
            marks = [pytest.mark.skip(reason="marked skip")] if "skip" in match.group(1) else []
            yield pytest.param(match.group(2), id=f"{name}:{line}", marks=marks)


BLOCKS = list(_blocks())


def test_the_documents_have_code_blocks():
    assert {p.id.split(":")[0] for p in BLOCKS} == set(FILES)


@pytest.mark.parametrize("code", BLOCKS)
def test_code_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<doc block>", "exec"), {"__name__": "__doc_block__"})
