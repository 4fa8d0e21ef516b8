"""The README and docs/ as a user's manual: links that resolve, a README that stays short, and product
files that describe the product rather than the history of its development."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PRODUCT = ["README.md", "docs", "src", "configs", "scripts", "benchmarks", "tests"]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".json", ".toml", ".txt", ".cfg"}
SKIP_DIRS = {"__pycache__", ".pytest_cache"}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
SESSION = re.compile(r"session[s]? ?[0-9]+", re.I)


def slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(md: Path) -> set[str]:
    text = FENCE.sub("", md.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, re.M)}


def links(md: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", md.read_text()))


def test_slug_follows_github():
    assert slug("Sampling and the Python API") == "sampling-and-the-python-api"
    assert slug("`shapes-tiny`, the demo model") == "shapes-tiny-the-demo-model"
    assert slug("Control and length: text, class") == "control-and-length-text-class"


@pytest.mark.parametrize("md", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_existing_files_and_headings(md):
    for target in links(md):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        assert dest.exists(), f"{md.relative_to(ROOT)}: link to missing {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{md.relative_to(ROOT)}: no heading #{anchor} in {dest.name}"


def test_a_broken_link_would_be_found(tmp_path):
    """Negative control for the link check: a missing file and a missing heading are both caught."""
    (tmp_path / "a.md").write_text("# Title\n[ok](a.md#title) [gone](b.md) [no](a.md#nope)\n```\n[code](x.md)\n```\n")
    found = links(tmp_path / "a.md")
    assert found == ["a.md#title", "b.md", "a.md#nope"]
    assert anchors(tmp_path / "a.md") == {"title"}


def test_readme_is_a_short_manual():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; the long form belongs in docs/"
    assert len(links(ROOT / "README.md")) > 20  # it points to the long form in docs/
    headings = [line[3:] for line in lines if line.startswith("## ")]
    for section in ("Two commands", "What you can do", "Sampling and the Python API", "Architecture", "Status"):
        assert section in headings


def product_files():
    for name in PRODUCT:
        top = ROOT / name
        files = [top] if top.is_file() else top.rglob("*")
        for f in files:
            parts = set(f.relative_to(ROOT).parts)
            if f.is_file() and f.suffix in TEXT_SUFFIXES and not parts & SKIP_DIRS \
                    and not any(p.endswith(".egg-info") for p in parts):
                yield f


def test_product_files_do_not_tell_the_development_story():
    files = list(product_files())
    assert ROOT / "README.md" in files and ROOT / "src" / "vidiff" / "__init__.py" in files
    hits = [f"{f.relative_to(ROOT)}:{i}: {line.strip()[:80]}"
            for f in files for i, line in enumerate(f.read_text(errors="replace").splitlines(), 1)
            if SESSION.search(line)]
    assert not hits, "numbered work sessions mentioned in product files:\n" + "\n".join(hits)
    word = "sess" + "ion"  # split, so that this file does not match the pattern it checks for
    assert SESSION.search(f"as measured in {word.title()} 12") and SESSION.search(f"{word}s 6")
