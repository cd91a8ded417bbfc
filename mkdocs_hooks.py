"""MkDocs hooks: pages written from the code and the README at build time, so they cannot drift.

- ``settings.md``: its ``<!-- settings -->`` marker becomes the table of every field of
  ``hookpost.settings.Settings`` (name, default, the field's description).
- ``index.md``: its ``<!-- readme -->`` marker becomes the README, with its ``docs/`` links made
  relative to the site.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hookpost.settings import Settings

ROOT = Path(__file__).resolve().parent
SETTINGS_MARKER = "<!-- settings -->"
README_MARKER = "<!-- readme -->"


def _shown(value: object) -> str:
    if value is None or value in ("", []):
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, list):
        return "`" + ",".join(_shown(item).strip("`") for item in value) + "`"
    if isinstance(value, Path):
        return f"`./{value}`"
    return f"`{value}`"


def settings_table() -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    prefix = Settings.model_config.get("env_prefix", "")
    for name, field in Settings.model_fields.items():
        if not field.description:
            raise ValueError(f"Settings.{name} has no description: the settings page would not explain it")
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        default = str(extra.get("when_unset") or _shown(field.get_default(call_default_factory=True)))
        rows.append(f"| `{prefix}{name.upper()}` | {default} | {field.description} |")
    return "\n".join(rows)


def readme_for_site() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.sub(r"\]\(docs/", "](", readme)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri == "settings.md":
        return markdown.replace(SETTINGS_MARKER, settings_table())
    if page.file.src_uri == "index.md":
        return markdown.replace(README_MARKER, readme_for_site())
    return markdown


def _present(nav: list[Any], docs_dir: Path) -> list[Any]:
    kept: list[Any] = []
    for entry in nav:
        title, target = next(iter(entry.items())) if isinstance(entry, dict) else (None, entry)
        if isinstance(target, list):
            kept.append({title: _present(target, docs_dir)})
        elif (docs_dir / target).exists():
            kept.append(entry)
    return kept


def on_config(config: Any, **_: Any) -> Any:
    # A page listed in the nav that another branch has not brought yet is left out, not an error.
    config["nav"] = _present(config["nav"], Path(config["docs_dir"]))
    return config
