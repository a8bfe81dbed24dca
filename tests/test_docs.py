"""The manual cannot drift from the code: every `smoothadv …` command shown in README.md and
docs/*.md parses with the CLI's own parser, and the quick ones (reading only shipped or shared
data) run."""

import re
import shlex

import pytest

from smoothadv.cli import build_parser, main

from .conftest import ROOT, SHARED

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
QUICK = ("recipe list", "recipe show", "analyze ../shared/data", "compare ../shared/data")


def commands():
    """(page, command) for every `smoothadv` line of the fenced blocks (continuations joined,
    [optional] parts and trailing # comments dropped)."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.strip()
                if line.startswith("torchrun "):
                    line = "smoothadv " + line.split(" -m smoothadv ", 1)[1]
                if not line.startswith("smoothadv "):
                    continue
                line = re.sub(r"\s+#.*$", "", line)
                line = re.sub(r"\[[^\]]*\]", "", line)
                found.append((page.name, line))
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        for span in re.findall(r"`(smoothadv [^`]+)`", prose):
            # prose also names commands (`smoothadv attack`): only full invocations count
            if len(span.split()) >= 3 and span.split()[1].islower() and "…" not in span:
                found.append((page.name, re.sub(r"\[[^\]]*\]", "", span)))
    return found


def test_the_manual_has_commands_on_every_page():
    pages = {page for page, _ in commands()}
    assert "README.md" in pages and len(pages) >= 6, pages


@pytest.mark.parametrize("page,line", commands())
def test_every_command_parses(page, line):
    argv = shlex.split(line)[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as done:
        pytest.fail(f"{page}: `{line}` does not parse (exit {done.code})")


@pytest.mark.parametrize("page,line", [c for c in commands()
                                        if c[1][len("smoothadv "):].startswith(QUICK)])
def test_quick_commands_run(page, line, capsys):
    if "../shared/data" in line and not SHARED.exists():
        pytest.skip("shared data not available")
    argv = [a.replace("../shared/data", str(SHARED)) for a in shlex.split(line)[1:]]
    assert main(argv) == 0, f"{page}: {line}"


def test_the_manual_holds_the_methods_declared_options():
    from smoothadv.methods import options_markdown

    text = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    start = text.index("<!-- options-table:start -->\n") + len("<!-- options-table:start -->\n")
    end = text.index("<!-- options-table:end -->")
    assert text[start:end] == options_markdown(), "regenerate with python -m smoothadv.methods"
