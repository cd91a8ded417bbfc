"""Services and shared pieces know nothing of HTTP: the API and the pages are fronts over them.

Every ``service.py`` and ``repository.py`` module, and every ``kit`` module but the web ones
(``kit/web*``, shared by the page fronts), is read with ``ast``: none may import FastAPI,
Starlette or ``hookpost.api``, anywhere in the module (functions and ``TYPE_CHECKING`` too).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
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


def _imports_in(path: Path, nodes: Iterable[ast.AST]) -> Iterator[tuple[str, list[str]]]:
    """Each import among ``nodes`` of ``path``'s tree: the module (relative imports resolved),
    and ``module.name`` for each name a ``from`` import takes."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield module, [f"{module}.{alias.name}" for alias in node.names]


def _imported(path: Path) -> set[str]:
    """Every module the file imports, relative imports resolved."""
    found: set[str] = set()
    for module, names in _imports_in(path, ast.walk(ast.parse(path.read_text(), str(path)))):
        found.update([module, *names])
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


# --- the layers: the wiring at the top, domains below it, no router reaching into another ----

WIRING = ("hookpost.app", "hookpost.lifespan")
# Modules that may import a router: the wiring, and a front's package that installs its own.
ROUTER_IMPORTERS = frozenset({"hookpost.app", "hookpost.console", "hookpost.portal"})
ALL_MODULES = sorted(PACKAGE_DIR.rglob("*.py"))


def _is_router(module: str) -> bool:
    return module.endswith(".router")


def _crossings(path: Path) -> set[tuple[str, str]]:
    """Each import of ``path`` that crosses a layer, as (importer, imported module)."""
    name = _module_name(path)
    found: set[tuple[str, str]] = set()
    for imported in _imported(path):
        if name not in WIRING and any(imported == w or imported.startswith(w + ".") for w in WIRING):
            found.add((name, imported))
        if _is_router(imported) and imported != name and name not in ROUTER_IMPORTERS:
            found.add((name, imported))
        fronts = ("hookpost.portal", "hookpost.console")
        for front, other in (fronts, fronts[::-1]):
            if name.startswith(front) and (imported == other or imported.startswith(other + ".")):
                found.add((name, imported))
    return {(importer, module) for importer, module in found if importer != module}


def test_no_module_reaches_across_the_layers() -> None:
    # "from hookpost.console.web import render" reads as the module and as the name: the module counts.
    crossings = sorted({pair for path in ALL_MODULES for pair in _crossings(path) if not _is_name(pair[1])})
    assert not crossings, f"imports across the layers (wiring, routers, portal -> console): {crossings}"


def _is_name(module: str) -> bool:
    """Whether ``module`` is a name inside a module (``hookpost.x.y.thing``), not a module."""
    parts = module.split(".")
    path = PACKAGE_DIR.parent.joinpath(*parts)
    return not (path.with_suffix(".py").exists() or (path / "__init__.py").exists())


def test_the_api_package_is_a_toolkit() -> None:
    """``api/`` imports no domain's router, page or service: they import it."""
    api_modules = [path for path in ALL_MODULES if _module_name(path).startswith("hookpost.api")]
    domains = ("router", "service", "web", "views", "hot_route")
    offending = sorted(
        (_module_name(path), module)
        for path in api_modules
        for module in _imported(path)
        if module.startswith("hookpost.") and not _is_name(module) and module.rsplit(".", 1)[-1] in domains
    )
    assert not offending, offending


# --- what each kind of process loads at start: only what it uses --------------------------
#
# Read statically: the imports a module runs when it is loaded (its top level and class
# bodies, not its functions, nor ``if TYPE_CHECKING``), followed through Hookpost's modules.
# An import inside a function is loaded when that function first runs: how a process puts off
# what it may never use (tests/process/test_worker_memory.py checks what a real process loads).


def _load_time_nodes(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _load_time_nodes(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody"):  # blocks, class bodies
            children = getattr(node, field, None)
            if isinstance(children, list):
                yield from _load_time_nodes([child for child in children if isinstance(child, ast.stmt)])
        for handler in getattr(node, "handlers", []):
            yield from _load_time_nodes(handler.body)


def _loaded_by(path: Path) -> set[str]:
    """The modules ``path`` imports when it is loaded, relative imports resolved."""
    found: set[str] = set()
    for module, names in _imports_in(path, _load_time_nodes(ast.parse(path.read_text(), str(path)).body)):
        found.add(module)
        found.update(name for name in names if not _is_name(name))
    return found


def _source(module: str) -> Path | None:
    path = PACKAGE_DIR.parent.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _load_closure(*roots: str) -> tuple[set[str], set[str]]:
    """(Hookpost's modules, other top-level packages) loaded by importing ``roots``."""
    ours: set[str] = set()
    others: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if not module.startswith("hookpost"):
            others.add(module.split(".")[0])
            continue
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):  # a module's packages load first
            name = ".".join(parts[:depth])
            source = _source(name)
            if source is None or name in ours:
                continue
            ours.add(name)
            todo.extend(_loaded_by(source))
    return ours, others


def _fronts(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules if _is_router(m) or m.split(".")[1:2] in (["pages"], ["console"], ["portal"]) or m in WIRING
    )


def test_a_worker_loads_no_router_page_or_fifo_runner_at_start() -> None:
    """A delivery process loads the tasks and its runtime: nothing of the API's fronts, and
    FIFO destinations' runner and sinks only on the first tick that finds one (the sinks'
    package, their table of delivered types, is loaded: the due queries read it)."""
    ours, others = _load_closure("hookpost.delivery.tasks", "hookpost.delivery.runtime")
    assert {"hookpost.delivery.engine", "hookpost.storage.models"} <= ours  # the rule reads the imports
    assert not _fronts(ours)
    assert not sorted(m for m in ours if m.startswith(("hookpost.delivery.fifo", "hookpost.delivery.sinks.")))
    assert not others & {"fastapi", "starlette", "jinja2"}


def test_the_scheduler_loads_no_sender_or_worker_machinery() -> None:
    """The scheduler queries what is due and publishes nudges: neither the claim nor the
    sender (httpx, aiohttp), nor a worker's engine, sinks or FIFO runner, nor the fronts, nor
    the API's validation (services, schemas); cryptography only with the first secret it opens."""
    ours, others = _load_closure("hookpost.delivery.scheduler")
    assert {"hookpost.delivery.due", "hookpost.delivery.maintenance"} <= ours  # the rule reads the imports
    assert not _fronts(ours)
    worker_side = ("hookpost.delivery.tasks", "hookpost.delivery.runtime", "hookpost.delivery.engine")
    sending = ("hookpost.delivery.claim", "hookpost.delivery.sender", "hookpost.delivery.fifo")
    assert not sorted(m for m in ours if m.startswith((*worker_side, *sending, "hookpost.delivery.sinks.")))
    assert not sorted(m for m in ours if m.endswith((".service", "endpoints.schemas", "destinations.schemas")))
    assert not others & {"httpx", "aiohttp", "fastapi", "starlette", "jinja2", "redis", "cryptography"}


def test_the_api_loads_no_worker_machinery_at_start() -> None:
    """An API process loads its routers and pages, but neither Celery (made by the dispatcher's
    first publish), nor a worker's engine, nor the sinks, nor Redis' client (loaded where used)."""
    ours, others = _load_closure("hookpost.app")
    assert {"hookpost.messages.router", "hookpost.console"} <= ours  # the rule reads the imports
    worker_side = ("hookpost.delivery.tasks", "hookpost.delivery.runtime", "hookpost.delivery.engine")
    assert not sorted(m for m in ours if m.startswith((*worker_side, "hookpost.delivery.sinks")))
    assert not others & {"celery", "kombu", "redis", "aiohttp", "billiard"}
