import re
from pathlib import Path

import pytest

from ec2gw.cli import readme_with_table

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("document", ["README.md", "docs/mapping.md"])
def test_generated_tables_are_in_step(document):
    """The README's actions table and docs/mapping.md's instance states table."""
    text = (ROOT / document).read_text()
    assert text == readme_with_table(text), f"run: ec2gw actions --readme {document}"
    assert "<!-- " in text


def test_local_links_of_the_documents_resolve():
    for document in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\((?!https?:)([^)#]+)", document.read_text()):
            assert (document.parent / target).exists(), (document.name, target)


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = {line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()}
    command = next(line for line in readme.splitlines() if "pip install -q -e '.[test]'" in line)
    assert command.strip() in ci
    real_oned_suites = next(line for line in ci if line.startswith("pytest tests/e2e"))
    assert real_oned_suites in readme


def test_every_action_that_changes_opennebula_says_what_it_relies_on_in_oned():
    from ec2gw.actions.registry import all_actions

    reads = ("Describe", "Get")
    writers_without = [s.name for s in all_actions() if not s.name.startswith(reads) and not s.oned]
    readers_with = [s.name for s in all_actions() if s.name.startswith(reads) and s.oned]
    assert writers_without == [] and readers_with == []
