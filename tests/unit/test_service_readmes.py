"""Each service's README has a table of its files (issue #20: "each service's README table
matches its files"): the first column of its table rows names, in backticks, every module
(`name.py`) and sub-package (`name/`) of the service's folder, and nothing that is not there.

Rules: `__init__.py` and `__main__.py` need not be listed (every package has them); a module
inside a sub-package (`api/orders.py`) lists its sub-package, and must exist too. Only the first
column of a table row counts, and only names that end in `.py` or `/`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
SERVICES = ("account", "oms", "risk", "pricing", "reporting", "notification", "platform")
UNLISTED = {"__init__.py", "__main__.py"}
_NAME = re.compile(r"`([A-Za-z0-9_./]+(?:\.py|/))`")


def present(folder: Path) -> set[str]:
    """The folder's modules and sub-packages, as its README should name them."""
    modules = {path.name for path in folder.glob("*.py") if path.name not in UNLISTED}
    packages = {f"{path.name}/" for path in folder.iterdir() if (path / "__init__.py").is_file()}
    return modules | packages


def listed(readme: Path) -> list[str]:
    """The names in the first column of the README's table rows (header and rule excluded)."""
    names = []
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = line.split("|")
        if not line.startswith("|") or len(cells) < 3 or set(cells[1].strip()) <= {"-", " "}:
            continue
        names += _NAME.findall(cells[1])
    return names


def top_level(name: str) -> str:
    head, slash, _ = name.partition("/")
    return f"{head}/" if slash else head


@pytest.mark.parametrize("service", SERVICES)
def test_the_readme_table_lists_exactly_the_services_modules(service: str) -> None:
    folder = SERVICES_DIR / service
    readme = folder / "README.md"
    assert readme.is_file(), f"services/{service}/README.md is missing"
    names = listed(readme)

    missing = sorted(present(folder) - {top_level(name) for name in names})
    absent = sorted(name for name in names if not (folder / name).exists())

    assert (missing, absent) == ([], []), (
        f"services/{service}/README.md's table does not match the folder: "
        f"not listed: {missing or 'none'}; listed but not in services/{service}/: "
        f"{absent or 'none'}"
    )
