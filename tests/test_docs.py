"""Every ```ssn block in the README and docs/ compiles: the examples users copy work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ssnc
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [(doc, text) for doc in DOCS
          for text in re.findall(r"^```ssn\n(.*?)^```", doc.read_text(), re.M | re.S)]


def test_the_docs_have_spec_blocks() -> None:
    assert len(BLOCKS) >= 5
    assert {doc.name for doc, _ in BLOCKS} >= {"README.md", "language.md"}


@pytest.mark.parametrize("doc,text", BLOCKS,
                         ids=[f"{d.name}-{i}" for i, (d, _) in enumerate(BLOCKS)])
def test_a_spec_block_compiles(doc: Path, text: str, tmp_path: Path) -> None:
    for imported in re.findall(r'^import "([^"]+)"', text, re.M):  # its imports, as files
        (tmp_path / imported).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / imported).write_text("def imported_unit = relu\n")
    spec = tmp_path / "doc.ssn"
    spec.write_text(text)
    program = ssnc.load(spec)
    assert program.models, f"a block of {doc.name} defines no model"
    for name in program.models:
        model = program.model(name)
        assert model.total_params >= 0 and model.ir.outputs
        model.to_onnx()


def test_headers_refer_only_to_files_in_the_repo() -> None:
    """Spec, stdlib and bench headers cite docs/reference.md and files that exist."""
    sources = [*sorted((ROOT / "specs").glob("*.ssn")), *sorted((ROOT / "bench").glob("*.py")),
               *sorted((ROOT / "compiler" / "stdlib").glob("*.ssn"))]
    cited = set()
    for source in sources:
        text = source.read_text()
        header = text.split("\nfrom __future__")[0] if source.suffix == ".py" else \
            text.split("\ndef ")[0].split("\nmodel ")[0]
        for path in re.findall(r"(?<![\w./])((?:[\w-]+/)*[\w-]+\.(?:md|py|ssn))\b", header):
            cited.add(path)
            assert (ROOT / path).exists() or (source.parent / path).exists(), (source, path)
    assert "docs/reference.md" in cited
    for spec in ("fractalnet", "fractalnet_caffe", "nin_cifar10", "hmrnn_charlm", "hornn_lm"):
        assert "arXiv:" in (ROOT / "specs" / f"{spec}.ssn").read_text().split("\nmodel ")[0]


def test_the_gallery_is_current() -> None:
    """docs/gallery.md is what docs/gallery.py writes for today's specs, and shows a picture
    of each (the SVGs themselves vary with the Graphviz version, so only their presence is
    checked)."""
    import runpy

    docs = ROOT / "docs"
    gallery = runpy.run_path(str(docs / "gallery.py"))
    items = gallery["entries"]()
    assert {e.spec for e in items} == {p.name for p in (ROOT / "specs").glob("*.ssn")}
    assert (docs / "gallery.md").read_text(encoding="utf-8") == gallery["page"](items), \
        "run .venv/bin/python docs/gallery.py"
    for e in items:
        assert (docs / e.picture).read_text(encoding="utf-8").lstrip().startswith("<?xml")
