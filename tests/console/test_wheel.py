"""The wheel users install carries the console and the app portal: built with ``uv build``, installed into a fresh
virtual environment (the locked versions), and a page served from there."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import make_settings
from tests.support.processes import free_port, running, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "hookpost" / "pages" / "static"  # shared by both fronts
PORTAL_STATIC = ROOT / "src" / "hookpost" / "portal" / "static"


def _uv(*args: str, cwd: Path = ROOT) -> str:
    uv = shutil.which("uv")
    assert uv is not None, "uv is not on PATH"
    done = subprocess.run([uv, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"uv {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_page_served_from_the_installed_wheel(tmp_path: Path) -> None:
    _uv("build", "--wheel", "--out-dir", str(tmp_path / "dist"), "--quiet")
    (wheel,) = (tmp_path / "dist").glob("hookpost-*.whl")
    requirements = tmp_path / "requirements.txt"
    _uv("export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "--output-file", str(requirements))
    venv = tmp_path / "venv"
    _uv("venv", "--quiet", "--python", sys.executable, str(venv))
    python = venv / "bin" / "python"
    _uv("pip", "install", "--quiet", "--python", str(python), "-r", str(requirements), str(wheel))

    # From a folder with no source tree in sight, hookpost is the installed one.
    where = subprocess.run(
        [str(python), "-c", "import hookpost; print(hookpost.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert where.startswith(str(venv)), where

    settings = make_settings(tmp_path / "data")
    settings.data_dir.mkdir()
    migrate = [str(venv / "bin" / "hookpost"), "migrate"]
    with running(migrate, settings, "migrate") as process:
        assert process.wait(timeout=120) == 0
    port = free_port()
    serve = [
        str(python), "-m", "uvicorn", "--factory", "hookpost.app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    with running(serve, settings, "api") as process:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(base_url, process)
        with httpx.Client(base_url=base_url, timeout=10) as client:
            root = client.get("/")
            assert root.status_code == 307
            assert root.headers["location"] == "/console/"
            page = client.get("/console/sign-in")
            assert page.status_code == 200
            assert "Admin token" in page.text
            assert page.headers["x-frame-options"] == "DENY"
            for name in ("htmx-2.0.11.min.js", "htmx-LICENSE.txt", "console.js", "console.css"):
                served = client.get(f"/console/static/{name}")
                assert served.status_code == 200, name
                assert served.content == (STATIC / name).read_bytes(), name
            # And the app portal, with its script and the stylesheet it shares with the console.
            portal = client.get("/portal")
            assert portal.status_code == 200
            assert "Access key" in portal.text
            for path, source in (("portal.js", PORTAL_STATIC), ("console.css", STATIC)):
                served = client.get(f"/portal/static/{path}")
                assert served.status_code == 200, path
                assert served.content == (source / path).read_bytes(), path
