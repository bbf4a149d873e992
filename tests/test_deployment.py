"""Deployment files checked offline: Dockerfile lint, compose schema, Kubernetes schemas, and one source per limit.

No Docker engine or cluster runs here; what can be checked without one is checked (README, "Deployment").
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from asr_service.config import Settings
from asr_service.proxy import DEPLOY_DIR

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
K8S = sorted((DEPLOY_DIR / "k8s").glob("*.yaml"))


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([BIN / "hadolint", REPO / "docker" / "Dockerfile"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_readyz_healthcheck_and_mounted_model() -> None:
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r"^USER 10001$", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile
    assert "ASR_MODEL=/models/GLM-ASR-Nano-2512" in dockerfile and 'VOLUME ["/models"' in dockerfile
    assert "--shm-size" in dockerfile
    # the compiled kernels outlive the container, and a first start that compiles them is not declared unhealthy
    assert (
        re.search(r'^VOLUME \[.*"/var/cache/asr"\]$', dockerfile, re.M) and "ASR_CACHE_DIR=/var/cache/asr" in dockerfile
    )
    start_period = re.search(r"--start-period=(\d+)s", dockerfile)
    assert start_period and int(start_period.group(1)) >= 300


def test_compose_file_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", REPO / "docker" / "compose.yaml"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_scales_behind_the_upstream() -> None:
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    asr = compose["services"]["asr"]
    assert "container_name" not in asr and "ports" not in asr, "a fixed name or host port stops --scale"
    assert asr["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "../models:/models:ro" in asr["volumes"]
    assert any(volume.split(":")[1] == "/var/cache/asr" for volume in asr["volumes"])
    upstream = (DEPLOY_DIR / "asr" / "upstream.conf").read_text()
    assert re.search(r"^\s*least_conn;", upstream, re.M) and "server asr:8000" in upstream
    nginx = compose["services"]["nginx"]
    assert "../deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert nginx["secrets"][0]["target"] == "/etc/nginx/asr/htpasswd"


@pytest.mark.parametrize("manifest", K8S, ids=lambda p: p.name)
def test_kubernetes_manifests_are_valid(manifest: Path) -> None:
    for document in yaml.safe_load_all(manifest.read_text()):
        if document.get("kind") == "Kustomization":
            assert all((manifest.parent / r).is_file() for r in document["resources"])
            continue
        kubernetes_validate.validate(document, "1.30.0", strict=True)


def test_kubernetes_deployment_probes_limits_and_scaling() -> None:
    deployment = yaml.safe_load((DEPLOY_DIR / "k8s" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["terminationGracePeriodSeconds"] >= 120
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["ASR_MAX_UPLOAD_MB"] == str(int(Settings().max_upload_mb))
    ingress = yaml.safe_load((DEPLOY_DIR / "k8s" / "ingress.yaml").read_text())
    assert (
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
        == f"{int(Settings().max_upload_mb)}m"
    )
    hpa = yaml.safe_load((DEPLOY_DIR / "k8s" / "hpa.yaml").read_text())
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "asr_queue_depth"


def test_download_script_verifies_a_model_folder(tiny_glmasr_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, REPO / "scripts" / "download_model.py", str(tiny_glmasr_dir), "--verify-only"],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert report["device"] == "cpu" and report["sha256"]["model.safetensors"]


def test_download_script_refuses_a_folder_that_is_not_glm_asr(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "whisper"}')
    result = subprocess.run(
        [sys.executable, REPO / "scripts" / "download_model.py", str(tmp_path), "--verify-only"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "not 'glmasr'" in result.stderr
