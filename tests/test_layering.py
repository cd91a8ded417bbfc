"""Services and shared pieces know nothing of HTTP: the API and the pages are fronts over them.

Every ``service.py`` and ``repository.py`` module, and every ``kit`` module but the web ones
(``kit/web*``, shared by the page fronts), is read with ``ast``: none may import FastAPI,
Starlette or ``hookpost.api``, anywhere in the module (functions and ``TYPE_CHECKING`` too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hookpost

PACKAGE_DIR = Path(hookpost.__file__).parent
FORBIDDEN = ("fastapi", "starlette", "hookpost.api")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _kept_free_of_http(path: Path) -> bool:
    relative = path.relative_to(PACKAGE_DIR)
    if path.name in ("service.py", "repository.py"):
        return True
    return relative.parts[0] == "kit" and not relative.parts[-1].startswith("web")


def _imported(path: Path) -> set[str]:
    """Every module the file imports, relative imports resolved."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _forbidden(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in FORBIDDEN)


CHECKED = sorted(path for path in PACKAGE_DIR.rglob("*.py") if _kept_free_of_http(path))


def test_the_rule_covers_the_services_and_the_kit() -> None:
    names = {_module_name(path) for path in CHECKED}
    assert {"hookpost.applications.service", "hookpost.messages.service", "hookpost.kit.pagination"} <= names
    assert "hookpost.kit.web_session" not in names


@pytest.mark.parametrize("path", CHECKED, ids=_module_name)
def test_imports_nothing_of_http(path: Path) -> None:
    offending = sorted(module for module in _imported(path) if _forbidden(module))
    assert not offending, f"{_module_name(path)} imports {', '.join(offending)}: move the HTTP piece to a router"
