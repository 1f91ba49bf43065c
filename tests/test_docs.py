"""The docs' Python examples run (docs/concepts.md as a doctest), and what the docs
say about the command line and the benchmarks matches the code."""
import doctest
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_markdown_doctests(path):
    """Run the ``>>>`` examples of a Markdown page; a code fence ends an example's output."""
    text = (ROOT / path).read_text(encoding="utf-8").replace("\n```", "\n\n```")
    test = doctest.DocTestParser().get_doctest(text, {}, str(path), str(path), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    return runner.summarize(verbose=False)


def test_concepts_page_examples_run():
    result = run_markdown_doctests("docs/concepts.md")
    assert result.attempted >= 25 and result.failed == 0, result


def test_no_link_outside_the_repository():
    """A clone has no ../shared/: the docs must not send users there."""
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
               ROOT / "benchmarks" / "README.md"]:
        text = md.read_text(encoding="utf-8")
        assert "../shared" not in text and "SPEC.md" not in text, md
        assert not re.search(r"SPEC concept", text), md


def test_benchmarks_readme_states_the_parsers_defaults():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.run import build_parser

    text = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    defaults = {a.dest: a.default for a in build_parser()._actions}
    m = re.search(r"`--sections [^`]*` \| which sections \(default `([^`]*)`\)", text)
    assert m, "the --sections row of the options table"
    assert m.group(1) == defaults["sections"]
    m = re.search(r"`--threads [^`]*` \| thread counts \(default `([^`]*)`\)", text)
    assert m and m.group(1) == ",".join(map(str, defaults["threads"]))
