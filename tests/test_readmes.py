"""The README and each page of docs/ say the same things in English and Chinese (same
commands, outputs and sections), the README stays a learner's page, and links lead somewhere."""
import re

import pytest

from helpers import PROJECT

READMES = ("README.md", "README.zh-CN.md")
PAGES = sorted(path.relative_to(PROJECT).as_posix() for path in (PROJECT / "docs").glob("*.md")
               if not path.name.endswith(".zh-CN.md"))
PAIRS = [READMES] + [(page, page.replace(".md", ".zh-CN.md")) for page in PAGES]
ALL = [name for pair in PAIRS for name in pair]


def text(name):
    return (PROJECT / name).read_text()


def blocks(name, language):
    """The fenced blocks of that language ("" for plain ones), as lists of lines."""
    found, block, block_language = [], None, None
    for line in text(name).splitlines():
        if block is None and line.startswith("```"):
            block, block_language = [], line[3:]
        elif block is not None and line == "```":
            if block_language == language:
                found.append(block)
            block = None
        elif block is not None:
            block.append(line)
    return found


def prose(name):
    """The lines outside fenced blocks."""
    return re.sub(r"^```.*?^```$", "", text(name), flags=re.MULTILINE | re.DOTALL).splitlines()


def commands(name):
    """Each shell line, without the comment after it (comments are translated)."""
    return [re.split(r"\s+# ", line)[0].rstrip()
            for block in blocks(name, "sh") for line in block if line.strip()]


def shape(name):
    """Heading levels in order, and the number of rows of each table."""
    lines = prose(name)
    tables = re.findall(r"((?:^\|.*\n)+)", "\n".join(lines) + "\n", re.MULTILINE)
    return ([line.split(" ")[0] for line in lines if line.startswith("#")],
            [table.count("\n") for table in tables],
            re.findall(r"!\[[^]]*\]\(([^)]+)\)", text(name)))


def slug(heading):
    """The anchor GitHub makes of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_page_has_both_languages():
    chinese = sorted(path.relative_to(PROJECT).as_posix()
                     for path in (PROJECT / "docs").glob("*.zh-CN.md"))

    assert len(PAGES) >= 10
    assert chinese == sorted(pair[1] for pair in PAIRS[1:])


@pytest.mark.parametrize("pair", PAIRS, ids=lambda pair: pair[0])
def test_both_languages_list_the_same_shell_commands(pair):
    english, chinese = (commands(name) for name in pair)

    assert english
    assert english == chinese


# The pages that show an output (a plain fenced block) in either language: for the others
# the comparison would be of two empty lists.
WITH_OUTPUTS = [pair for pair in PAIRS if blocks(pair[0], "") or blocks(pair[1], "")]


def test_the_outputs_shown_are_found():
    assert READMES in WITH_OUTPUTS  # the blog's lines, as the scripts print them
    assert ("docs/streams.md", "docs/streams.zh-CN.md") in WITH_OUTPUTS  # test_streams.py runs it


@pytest.mark.parametrize("pair", WITH_OUTPUTS, ids=lambda pair: pair[0])
def test_both_languages_show_the_same_outputs(pair):
    english, chinese = (blocks(name, "") for name in pair)

    assert english
    assert english == chinese


@pytest.mark.parametrize("pair", PAIRS, ids=lambda pair: pair[0])
def test_both_languages_have_the_same_sections_tables_and_pictures(pair):
    assert shape(pair[0]) == shape(pair[1])


@pytest.mark.parametrize("pair", PAIRS, ids=lambda pair: pair[0])
def test_each_language_links_to_the_other_at_the_top(pair):
    for name, other in (pair, pair[::-1]):
        top = text(name).split("\n\n")[1]

        assert f"]({other.split('/')[-1]})" in top


@pytest.mark.parametrize("name", ALL)
def test_every_link_leads_to_a_file_and_heading_that_exist(name):
    for target in re.findall(r"\]\(([^)\s]+)\)", text(name)):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (PROJECT / name).parent / path if path else PROJECT / name

        assert linked.exists(), target
        if anchor:
            headings = [slug(line.lstrip("#")) for line in prose(linked.relative_to(PROJECT))
                        if line.startswith("#")]
            assert anchor in headings, target


@pytest.mark.parametrize("readme", READMES)
def test_the_readme_is_a_learners_page(readme):
    lines = text(readme).splitlines()
    first_screen, hello_world = "\n".join(lines[:40]), "\n".join(lines[:80])

    assert len(lines) <= 200
    assert "```mermaid" in first_screen
    assert "bash scripts/demo.sh" in first_screen and "bash scripts/test.sh" in first_screen
    for step in ("python send.py", "list_queues", "docs/web-ui.png", "python receive.py"):
        assert step in hello_world


@pytest.mark.parametrize("pair", PAIRS[1:], ids=lambda pair: pair[0])
def test_the_readme_links_each_page_in_its_language(pair):
    for readme, page in zip(READMES, pair):
        assert f"]({page})" in text(readme)


@pytest.mark.parametrize("name", ALL[2:])
def test_each_page_starts_with_what_it_is_for_and_a_command(name):
    top = text(name).split("\n## ")[0]

    assert "```sh\n" in top
    assert top.index("```sh\n") > top.index(")\n\n") + 40  # a sentence before the command


@pytest.mark.parametrize("name", ALL[1::2])
def test_chinese_paragraphs_have_no_line_breaks(name):
    # A line break inside a Chinese paragraph shows as a stray space in some viewers.
    lines = prose(name)
    for line, following in zip(lines, lines[1:]):
        if line.strip() and following.strip():
            assert re.match(r"[|#-]|\d+\. ", following) and re.match(r"[|#-]|\d+\. ", line), \
                f"{line!r} goes on in {following!r}"


def test_missed_targets_stay_on_the_performance_page():
    assert [name for name in ALL if "MISSED" in text(name)] == [
        "docs/performance.md", "docs/performance.zh-CN.md"]
