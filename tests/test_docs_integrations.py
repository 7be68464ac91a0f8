"""The runnable examples of docs/transport.md, docs/proxy.md and docs/langchain.md run as
written (their asserts are the checks); blocks marked ``python notest`` are fragments."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["transport.md", "proxy.md", "langchain.md"]


def _blocks(page: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (DOCS / page).read_text(), re.S | re.M)


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page: str, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = _blocks(page)
    assert blocks, f"{page} has no runnable example"
    for code in blocks:
        exec(compile(code, f"docs/{page}", "exec"), {"__name__": "docs_example"})
    assert capsys.readouterr().out.strip()  # each example prints what it shows


def test_langchain_example_prints_what_it_says(capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = _blocks("langchain.md")
    exec(compile(code, "docs/langchain.md", "exec"), {"__name__": "docs_example"})
    assert capsys.readouterr().out.split("\n")[:3] == ["4", "4", "1 13"]
