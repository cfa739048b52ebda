"""The README's examples, read by the tests that run them as a reader would."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(heading: str, language: str) -> str:
    """The first ```language block after `## heading`."""
    section = README.read_text(encoding="utf-8").split(f"## {heading}\n", 1)[-1]
    found = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert found is not None, f"the README's {language} example under {heading!r} is gone"
    return found.group(1)
