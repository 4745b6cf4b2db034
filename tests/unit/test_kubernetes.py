"""deploy/kubernetes: every object valid for a pinned Kubernetes release (schemas bundled by kubernetes-validate, offline),
and what a worker needs read from them: probes, identity, volume, grace, secrets, scraping, network."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from deploy.local_run import manifests, one, pod_environment, volume_folder, worker_container
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
#: the oldest release the manifests are written for (policy/v1 PDBs, StatefulSet fields used here)
KUBERNETES_VERSION = "1.33.0"
SETTINGS = {f"BORDERFLOW_{name.upper()}" for name in Settings.model_fields}


def rendered(overlay: str) -> list[dict[str, Any]]:
    tool = shutil.which("kubectl")
    if tool is None:
        pytest.skip("kubectl (its built-in kustomize) is not on this machine: overlays not rendered; the base is checked as it is")
    command = [tool, "kustomize", str(KUBERNETES / "overlays" / overlay)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def assert_valid(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_the_base_objects_are_valid_as_they_are() -> None:
    objects = manifests()
    assert {o["kind"] for o in objects} == {"ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget", "NetworkPolicy"}
    assert_valid(objects)


def test_the_validator_rejects_a_misspelt_field() -> None:
    statefulset = copy.deepcopy(one(manifests(), "StatefulSet"))
    worker_container(statefulset)["readinesProbe"] = worker_container(statefulset).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_each_overlay_renders_valid_objects(overlay: str) -> None:
    objects = rendered(overlay)
    assert_valid(objects)
    statefulset = one(objects, "StatefulSet")
    assert all(o["metadata"].get("namespace") for o in objects), "every object in the overlay's namespace"
    referenced = {
        item["valueFrom"]["secretKeyRef"]["name"]
        for item in worker_container(statefulset)["env"]
        if "secretKeyRef" in item.get("valueFrom", {}) and not item["valueFrom"]["secretKeyRef"].get("optional")
    }
    secrets = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
    if overlay == "dev":
        assert referenced <= secrets, "the dev overlay brings every Secret it needs"
    else:
        assert not secrets, "production Secrets are made out of band, never committed"
        assert referenced == {"borderflow-tokens"}


def test_identity_comes_from_the_pod_name_and_the_headless_service() -> None:
    objects = manifests()
    statefulset, headless = one(objects, "StatefulSet"), one(objects, "Service", "borderflow-workers")
    assert statefulset["spec"]["serviceName"] == "borderflow-workers"
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True, "a recovering peer must still resolve"
    secret_values = {("borderflow-tokens", "cluster-token"): "c", ("borderflow-tokens", "ingest-token"): "i"}
    env = pod_environment(objects, 2, secret_values, namespace="ops")
    assert env["BORDERFLOW_WORKER_ID"] == "borderflow-2"
    assert env["BORDERFLOW_ADVERTISED_URL"] == "http://borderflow-2.borderflow-workers.ops.svc.cluster.local:6066"
    assert env["BORDERFLOW_WEB_HOST"] == "0.0.0.0" and env["BORDERFLOW_WEB_PORT"] == "6066"
    assert env["BORDERFLOW_CLUSTER_TOKEN"] == "c" and env["BORDERFLOW_INGEST_TOKEN"] == "i"
    unknown = {name for name in env if name.startswith("BORDERFLOW_")} - SETTINGS
    assert not unknown, f"not borderflow settings: {unknown}"
    settings = Settings(**{k[len("BORDERFLOW_") :].lower(): v for k, v in env.items() if k.startswith("BORDERFLOW_")})
    assert settings.canonical_url == env["BORDERFLOW_ADVERTISED_URL"]
    assert settings.standby_replicas == 1


def test_the_state_lives_on_the_claimed_volume() -> None:
    objects = manifests()
    statefulset = one(objects, "StatefulSet")
    claim = statefulset["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    name, mount = volume_folder(objects, 0)
    assert name == "state-borderflow-0"
    data_dir = next(e["value"] for e in worker_container(statefulset)["env"] if e["name"] == "BORDERFLOW_DATA_DIR")
    assert Path(data_dir).is_relative_to(mount)


def test_probes_ready_on_health_alive_through_a_recovery_of_any_length() -> None:
    objects = manifests()
    container = worker_container(one(objects, "StatefulSet"))
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"] == {"path": "/health", "port": "http"}
    # /health is 503 for as long as a recovery takes: a liveness probe on it would kill a worker recovering a large state;
    # /livez answers through start and recovery, and no flood of callers can have it refused (streams/web/access.PROBES)
    assert liveness["httpGet"] == {"path": "/livez", "port": "http"}
    startup_timeout = Settings(startup_timeout=one(objects, "ConfigMap")["data"]["BORDERFLOW_STARTUP_TIMEOUT"]).startup_timeout
    tolerated = liveness["periodSeconds"] * liveness["failureThreshold"]
    assert tolerated > startup_timeout.total_seconds() + liveness["periodSeconds"], "the placeholder's 503s must not kill a start"
    assert "startupProbe" not in container


def test_grace_resources_disruption_budget_and_scraping() -> None:
    objects = manifests()
    statefulset = one(objects, "StatefulSet")
    pod = statefulset["spec"]["template"]
    container = worker_container(statefulset)
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 30, "a clean stop takes seconds (docs/deployment.md)"
    assert container["resources"]["requests"]["cpu"] in ("1", 1, "1000m")
    assert statefulset["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    budget = one(objects, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == statefulset["spec"]["selector"]["matchLabels"]
    annotations = pod["metadata"]["annotations"]
    http = next(p for p in container["ports"] if p["name"] == "http")
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == http["containerPort"]
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_network_policy_opens_only_http_kafka_and_dns() -> None:
    objects = manifests()
    policy = one(objects, "NetworkPolicy")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["spec"]["podSelector"]["matchLabels"] == one(objects, "StatefulSet")["spec"]["selector"]["matchLabels"]
    ingress = {(p["protocol"], p["port"]) for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    egress = {(p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ingress == {("TCP", 6066)}
    assert egress == {("TCP", 6066), ("TCP", 9092), ("TCP", 9093), ("UDP", 53), ("TCP", 53)}
    assert all(rule.get("from") for rule in policy["spec"]["ingress"]), "no ingress rule open to everyone"
