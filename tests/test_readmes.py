"""README.md and README.zh-CN.md say the same things: same commands, outputs and sections."""
import re

import pytest

from helpers import PROJECT

READMES = ["README.md", "README.zh-CN.md"]


def blocks(readme, language):
    """The fenced blocks of that language ("" for plain ones), as lists of lines."""
    found, block, block_language = [], None, None
    for line in (PROJECT / readme).read_text().splitlines():
        if block is None and line.startswith("```"):
            block, block_language = [], line[3:]
        elif block is not None and line == "```":
            if block_language == language:
                found.append(block)
            block = None
        elif block is not None:
            block.append(line)
    return found


def commands(readme):
    """Each shell line, without the comment after it (comments are translated)."""
    return [re.split(r"\s+# ", line)[0].rstrip()
            for block in blocks(readme, "sh") for line in block if line.strip()]


def test_both_readmes_list_the_same_shell_commands():
    english, chinese = (commands(readme) for readme in READMES)

    assert len(english) > 30
    assert english == chinese


def test_both_readmes_show_the_same_outputs():
    english, chinese = (blocks(readme, "") for readme in READMES)

    assert english == chinese


def test_both_readmes_have_the_same_number_of_sections_and_tables():
    def shape(readme):
        text = (PROJECT / readme).read_text()
        return (re.findall(r"^#+ ", text, re.MULTILINE),
                len(re.findall(r"^\|---", text, re.MULTILINE)))

    assert shape(READMES[0]) == shape(READMES[1])


@pytest.mark.parametrize("readme", READMES)
def test_each_readme_links_to_the_other(readme):
    other = READMES[1 - READMES.index(readme)]

    assert f"]({other})" in (PROJECT / readme).read_text().split("\n\n")[1]
