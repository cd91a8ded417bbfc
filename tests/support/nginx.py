"""deploy/nginx/hookpost.conf made runnable by a test: nginx as this user, in a folder of the
test's own, with only what any installation changes replaced (the upstream's servers, the
listening addresses, the certificate paths).

nginx comes from .ci/run (Debian's package). Without it a test skips, saying so; under
CI=true it fails instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Sequence
from pathlib import Path

from tests.support.services import unavailable

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "deploy" / "nginx" / "hookpost.conf"


def tool(name: str, *candidates: str) -> str:
    found = shutil.which(name) or next((path for path in candidates if os.access(path, os.X_OK)), None)
    if not found:
        unavailable(f"{name} is not installed (.ci/run installs it with apt-get)")
    return found


def render(conf: str, substitutions: dict[str, str]) -> str:
    """``conf`` with each key replaced; each must be there exactly once, so a change to the
    shipped file that the test would silently miss fails here instead."""
    for old, new in substitutions.items():
        assert conf.count(old) == 1, f"{old!r} appears {conf.count(old)} times in {CONF}"
        conf = conf.replace(old, new)
    return conf


def nginx_conf(
    folder: Path,
    *,
    upstreams: Sequence[str],
    https_port: int,
    http_port: int,
    cert: Path,
    key: Path,
    listen_host: str = "127.0.0.1",
) -> Path:
    """The main nginx.conf in ``folder``, including the shipped site with the API's
    ``upstreams`` (one ``server`` line each); returns its path."""
    servers = "\n    ".join(f"server {upstream};" for upstream in upstreams)
    site = render(
        CONF.read_text(),
        {
            "server api:8000;": servers,
            "listen 80;": f"listen {listen_host}:{http_port};",
            "listen 443 ssl;": f"listen {listen_host}:{https_port} ssl;",
            "/etc/nginx/certs/fullchain.pem": str(cert),
            "/etc/nginx/certs/privkey.pem": str(key),
        },
    )
    (folder / "hookpost.conf").write_text(site)
    # Run by root, nginx would switch its workers to "nobody"; keep them the current user.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    main = f"""
        {user}
        worker_processes 1;
        pid {folder}/nginx.pid;
        error_log {folder}/error.log info;
        events {{ worker_connections 256; }}
        http {{
            access_log {folder}/access.log;
            client_body_temp_path {folder}/client_body;
            proxy_temp_path {folder}/proxy;
            fastcgi_temp_path {folder}/fastcgi;
            uwsgi_temp_path {folder}/uwsgi;
            scgi_temp_path {folder}/scgi;
            include {folder}/hookpost.conf;
        }}
    """
    path = folder / "nginx.conf"
    path.write_text(main)
    return path
