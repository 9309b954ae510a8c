"""send.py and receive.py stand alone, so the helpers both need are copies: kept identical."""
import ast
import re

from helpers import PROJECT

START = "# -- Shared by send.py and receive.py"
END = "# -- End of the shared part --"


def parts(script):
    text = (PROJECT / script).read_text()
    start, end = text.index(START), text.index(END)
    return text[:start], text[start:end]


def top_level_functions(text):
    return {node.name for node in ast.parse(text).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def test_the_shared_part_is_the_same_text_in_both_scripts():
    assert parts("send.py")[1] == parts("receive.py")[1]


def test_helpers_outside_the_shared_part_have_names_of_their_own():
    own = {script: top_level_functions(re.sub(r"(?s)^.*?\n(?=import)", "", parts(script)[0]))
           for script in ["send.py", "receive.py"]}

    assert own["send.py"] & own["receive.py"] == {"main", "parse_args"}
