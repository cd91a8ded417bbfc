"""The deployment files, checked without a Docker engine or a cluster: the Kubernetes
manifests against the Kubernetes API schemas (kubernetes-validate bundles them, so this runs
offline), compose.yaml against the Compose specification (bundled by check-jsonschema), and
every Hookpost variable they set against the settings Hookpost really reads."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import hookpost.process.gunicorn_conf as gunicorn_conf
from hookpost.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
# The oldest Kubernetes still commonly run, and the newest whose schemas are bundled.
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
HOOKPOST_SERVICES = {"migrate", "api", "worker", "scheduler"}
# Set by the image for Python itself, not Hookpost settings.
PYTHON_VARIABLES = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}

Manifest = dict[str, Any]


def manifests() -> list[tuple[str, Manifest]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path.name, document))
    return found


def by_kind(kind: str) -> list[Manifest]:
    return [manifest for _, manifest in manifests() if manifest["kind"] == kind]


def named(kind: str, name: str) -> Manifest:
    matches = [manifest for manifest in by_kind(kind) if manifest["metadata"]["name"] == name]
    assert len(matches) == 1, (kind, name, len(matches))
    return matches[0]


def pod_spec(manifest: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def containers() -> list[tuple[str, dict[str, Any]]]:
    return [
        (manifest["metadata"]["name"], container)
        for manifest in [*by_kind("Deployment"), *by_kind("Job")]
        for container in pod_spec(manifest)["containers"]
    ]


def known_variables() -> set[str]:
    """Every HOOKPOST_* setting, plus the process variables the Gunicorn config documents."""
    settings = {f"HOOKPOST_{name.upper()}" for name in Settings.model_fields}
    process = set(re.findall(r"``([A-Z][A-Z0-9_]+)``", gunicorn_conf.__doc__ or ""))
    return settings | process


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("name", "manifest"), manifests(), ids=[f"{n}:{m['kind']}" for n, m in manifests()])
def test_manifest_is_valid_kubernetes(name: str, manifest: Manifest, version: str) -> None:
    kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda m: m["spec"].__setitem__("replicas", "two"),
        lambda m: m["spec"]["template"]["spec"]["containers"][0].__setitem__("livenesProbe", {}),
    ],
    ids=["wrong type", "misspelt field"],
)
def test_the_validator_rejects_a_broken_manifest(break_it: Any) -> None:
    broken = copy.deepcopy(named("Deployment", "hookpost-api"))
    break_it(broken)

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_every_part_is_there() -> None:
    kinds = sorted(manifest["kind"] for _, manifest in manifests())
    assert kinds.count("Deployment") == 3
    for kind in ("Job", "Service", "Ingress", "HorizontalPodAutoscaler", "ConfigMap", "Secret"):
        assert kind in kinds, kind


def test_api_runs_one_uvicorn_process_per_container_with_probes() -> None:
    api = named("Deployment", "hookpost-api")
    (container,) = pod_spec(api)["containers"]
    command = container["command"]
    assert command[:3] == ["uvicorn", "--factory", "hookpost.app:create_app"]
    assert "--workers" not in command
    assert "--reload" not in command
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_worker_liveness_is_the_worker_health_check() -> None:
    (container,) = pod_spec(named("Deployment", "hookpost-worker"))["containers"]
    assert container["args"][0] == "worker"
    assert container["livenessProbe"]["exec"]["command"][:2] == ["hookpost", "worker-health"]


def test_scheduler_runs_two_replicas_replaced_one_at_a_time() -> None:
    scheduler = named("Deployment", "hookpost-scheduler")
    assert scheduler["spec"]["replicas"] == 2  # its claims are guarded in the database
    assert scheduler["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 1
    assert named("Job", "hookpost-migrate")["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_every_container_asks_for_resources_and_runs_unprivileged() -> None:
    for owner, container in containers():
        requests = container["resources"]["requests"]
        assert {"cpu", "memory"} <= set(requests), owner
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, owner
    for manifest in [*by_kind("Deployment"), *by_kind("Job")]:
        assert pod_spec(manifest)["securityContext"]["runAsNonRoot"] is True


def test_the_manifests_refer_to_each_other() -> None:
    config_maps = {manifest["metadata"]["name"] for manifest in by_kind("ConfigMap")}
    secrets = {manifest["metadata"]["name"] for manifest in by_kind("Secret")}
    for owner, container in containers():
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps, owner
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets, owner
    api = named("Deployment", "hookpost-api")
    service = named("Service", "hookpost-api")
    assert service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    backend = named("Ingress", "hookpost")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "hookpost-api"
    assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
    target = named("HorizontalPodAutoscaler", "hookpost-api")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "hookpost-api")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # resolves the anchors and merges
    return loaded


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    result = check_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr

    broken = compose()
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken_file = tmp_path / "compose.yaml"
    broken_file.write_text(json.dumps(broken))
    assert check_compose(broken_file).returncode != 0


def test_compose_runs_every_part_once_migrated() -> None:
    services = compose()["services"]
    assert set(services) == {"nginx", "certificate", "api", "worker", "scheduler", "migrate", "postgres", "redis"}
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker", "scheduler"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert isinstance(services[name]["command"], list), name
    assert services["worker"]["healthcheck"]["test"][1:3] == ["hookpost", "worker-health"]
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])


def volume_at(service: dict[str, Any], target: str) -> str:
    """The named volume ``service`` mounts at ``target`` (short syntax: ``name:target[:mode]``)."""
    for mount in service["volumes"]:
        source, mounted_at, *_ = mount.split(":")
        if mounted_at == target:
            return str(source)
    raise AssertionError(f"nothing mounted at {target}: {service['volumes']}")


def certificate_folder() -> str:
    """Where compose.yaml's certificate service writes: its command's one argument."""
    command = compose()["services"]["certificate"]["command"]
    assert command[0] == "self-signed-certificate", command
    (folder,) = command[1:]
    return str(folder)


def make_certificate_as_compose_does(folder: Path) -> subprocess.CompletedProcess[str]:
    """compose.yaml's certificate service's command, run here with ``folder`` for its volume."""
    command = [
        folder if argument == certificate_folder() else argument
        for argument in compose()["services"]["certificate"]["command"]
    ]
    return subprocess.run(
        [sys.executable, "-m", "hookpost", *map(str, command)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_makes_nginx_a_certificate_before_nginx_starts() -> None:
    """What Compose cannot show without an engine: nginx reads its certificate from the volume
    the certificate service writes, waits for it, and the image owns the folder it writes to."""
    services = compose()["services"]
    nginx, certificate = services["nginx"], services["certificate"]
    shared = volume_at(certificate, certificate_folder())
    assert volume_at(nginx, "/etc/nginx/certs") == shared
    assert shared in compose()["volumes"]  # a named volume, kept across restarts
    assert nginx["depends_on"]["certificate"] == {"condition": "service_completed_successfully"}
    assert certificate["restart"] == "no"
    assert certificate["image"] == services["api"]["image"]
    # A fresh named volume takes the owner of the image's folder it is mounted on.
    assert re.search(
        rf"install -d -o hookpost -g hookpost -m 0755 {re.escape(certificate_folder())}$", DOCKERFILE.read_text(), re.M
    )


def dockerfile_variables() -> dict[str, str]:
    """The ENV of the image's final stage (what the processes run with)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    text = text[text.rindex("\nFROM ") :]
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            found.update(re.findall(r"([A-Z][A-Z0-9_]*)=(\S+)", line))
    return found


def test_dockerfile_is_multi_stage_locked_unprivileged_and_exec_form() -> None:
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert "COPY pyproject.toml uv.lock" in text
    assert re.search(r"^RUN uv sync --locked --no-dev", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user
    assert not user[-1].startswith(("root", "0"))
    for instruction in ("ENTRYPOINT", "CMD"):
        (argument,) = re.findall(rf"^{instruction} (.+)$", text, re.M)
        assert isinstance(json.loads(argument), list), instruction  # exec form


def test_every_variable_set_is_a_real_setting() -> None:
    set_where: dict[str, set[str]] = {}

    def note(variables: object, where: str) -> None:
        for name in variables or {}:  # type: ignore[attr-defined]
            set_where.setdefault(str(name), set()).add(where)

    for name in dockerfile_variables():
        note([name], "Dockerfile")
    for service_name, service in compose()["services"].items():
        if service_name in HOOKPOST_SERVICES:
            note(service.get("environment"), f"compose.yaml:{service_name}")
    for manifest in by_kind("ConfigMap"):
        note(manifest["data"], f"k8s ConfigMap {manifest['metadata']['name']}")
    for manifest in by_kind("Secret"):
        note(manifest.get("stringData"), f"k8s Secret {manifest['metadata']['name']}")
    for owner, container in containers():
        note([variable["name"] for variable in container.get("env", [])], f"k8s {owner}")

    assert any(name.startswith("HOOKPOST_") for name in set_where)
    assert {"HOOKPOST_DATABASE_URL", "HOOKPOST_BIND", "WEB_CONCURRENCY"} <= known_variables()
    assert "HOOKPOST_NOT_A_SETTING" not in known_variables()
    unknown = {name: where for name, where in set_where.items() if name not in known_variables() | PYTHON_VARIABLES}
    assert not unknown, f"not Hookpost settings: {unknown}"
