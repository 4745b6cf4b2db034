"""The StatefulSet of deploy/kubernetes/base run as processes on one machine, the way Kubernetes would run it.

Each pod ``borderflow-<ordinal>`` is one ``borderflow worker`` process with the
environment the manifest gives it (the ConfigMap, ``$(POD_NAME)`` and the
other references resolved), its volume as a folder of its own, and the
manifest's probes: readiness decides when a pod counts as ready, and
liveness restarts a pod after as many failures in a row as the manifest
allows, as the kubelet would. What only a cluster has is replaced so:

- the headless Service's DNS name: ``http://127.0.0.1:<port>``, a port per pod
  (all pods would listen on 6066 in the cluster);
- the Secrets: tokens given by the caller, or made up for the run;
- the Kafka address and anything else the caller overrides.

``roll()`` is the StatefulSet controller's RollingUpdate: one pod at a time,
highest ordinal first, each stopped (SIGTERM, SIGKILL after the grace period)
and started again with the same identity and volume, the next only once it
is ready.

    python -m deploy.local_run up --kafka 127.0.0.1:9092 --replicas 3 --dir .borderflow/local

runs until Ctrl-C; ``kill -USR1`` on it rolls the pods.
"""

from __future__ import annotations

import argparse
import re
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # dev dependency without stubs (pyyaml)

from streams.broker.embedded import free_port
from streams.tools.launch import WorkerProcess, worker_env

BASE = Path(__file__).resolve().parent / "kubernetes" / "base"
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def manifests(directory: Path = BASE) -> list[dict[str, Any]]:
    """Every object of the YAML files in ``directory`` (kustomization.yaml aside)."""
    found: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return found


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The only object of ``kind`` (named ``name``, if given)."""
    matching = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    if len(matching) != 1:
        raise LookupError(f"{len(matching)} objects of kind {kind} named {name}, expected one")
    return matching[0]


def worker_container(statefulset: Mapping[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = statefulset["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "worker")


@dataclass(frozen=True)
class Probe:
    path: str
    period: float
    timeout: float
    failure_threshold: int


def probe(container: Mapping[str, Any], which: str) -> Probe:
    spec = container[which]
    return Probe(spec["httpGet"]["path"], spec.get("periodSeconds", 10), spec.get("timeoutSeconds", 1), spec.get("failureThreshold", 3))


def pod_environment(
    objects: list[dict[str, Any]], ordinal: int, secret_values: Mapping[tuple[str, str], str], namespace: str = "default"
) -> dict[str, str]:
    """The worker container's environment in pod ``<statefulset>-<ordinal>``, as the kubelet builds it.

    ``secret_values`` maps (secret name, key) to its value; an optional key
    that is missing is left out, a required one raises :class:`LookupError`.
    """
    statefulset = one(objects, "StatefulSet")
    container = worker_container(statefulset)
    fields = {"metadata.name": f"{statefulset['metadata']['name']}-{ordinal}", "metadata.namespace": namespace}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update({k: str(v) for k, v in one(objects, "ConfigMap", source["configMapRef"]["name"])["data"].items()})
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), str(item["value"]))
        elif "fieldRef" in item["valueFrom"]:
            env[name] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            value = secret_values.get((ref["name"], ref["key"]))
            if value is not None:
                env[name] = value
            elif not ref.get("optional", False):
                raise LookupError(f"secret {ref['name']} has no key {ref['key']}, which {name} needs")
    return env


def volume_folder(objects: list[dict[str, Any]], ordinal: int) -> tuple[str, str]:
    """(claim name, mount path) of the pod's state volume: ``state-borderflow-0`` mounted where the manifest says."""
    statefulset = one(objects, "StatefulSet")
    template = statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    mount = next(m for m in worker_container(statefulset)["volumeMounts"] if m["name"] == template)
    return f"{template}-{statefulset['metadata']['name']}-{ordinal}", mount["mountPath"]


def answers_ok(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback, our own worker)
            return bool(200 <= response.status < 400)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Pod:
    name: str
    ordinal: int
    worker: WorkerProcess
    #: times the liveness probe restarted it
    liveness_restarts: int = 0
    liveness_failures: int = 0

    @property
    def url(self) -> str:
        return self.worker.url


@dataclass
class LocalStatefulSet:
    """The StatefulSet's pods as local processes (see the module's docstring)."""

    kafka: str
    directory: Path
    replicas: int | None = None
    #: set on every pod after the manifest's environment (a kustomize overlay's part)
    overrides: dict[str, str] = field(default_factory=dict)
    secret_values: dict[tuple[str, str], str] = field(default_factory=dict)
    objects: list[dict[str, Any]] = field(default_factory=manifests)
    #: called with each line of what the runner does
    say: Callable[[str], None] = lambda line: None
    pods: list[Pod] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.statefulset = one(self.objects, "StatefulSet")
        self.container = worker_container(self.statefulset)
        self.readiness = probe(self.container, "readinessProbe")
        self.liveness = probe(self.container, "livenessProbe")
        self.grace = float(self.statefulset["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30))
        if self.replicas is None:
            self.replicas = int(self.statefulset["spec"]["replicas"])
        for key in (("borderflow-tokens", "cluster-token"), ("borderflow-tokens", "ingest-token")):
            self.secret_values.setdefault(key, secrets.token_hex(16))
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._prober: threading.Thread | None = None

    def environment(self, ordinal: int, port: int) -> dict[str, str]:
        env = pod_environment(self.objects, ordinal, self.secret_values)
        claim, mount = volume_folder(self.objects, ordinal)
        volume = self.directory / claim
        env["BORDERFLOW_DATA_DIR"] = str(volume / Path(env["BORDERFLOW_DATA_DIR"]).relative_to(mount))
        env |= {
            "BORDERFLOW_KAFKA": self.kafka,
            "BORDERFLOW_WEB_HOST": "127.0.0.1",
            "BORDERFLOW_WEB_PORT": str(port),
            "BORDERFLOW_ADVERTISED_URL": f"http://127.0.0.1:{port}",
        }
        return env | self.overrides

    def start(self) -> LocalStatefulSet:
        """Every pod at once (podManagementPolicy: Parallel); :meth:`wait_ready` waits for them."""
        assert self.replicas is not None
        for ordinal in range(self.replicas):
            name = f"{self.statefulset['metadata']['name']}-{ordinal}"
            port = free_port()
            worker = WorkerProcess(env=worker_env(self.environment(ordinal, port)), port=port, log=self.directory / f"{name}.log")
            self.pods.append(Pod(name, ordinal, worker.start()))
            self.say(f"{name}: started at {worker.url}")
        self._prober = threading.Thread(target=self._probe_liveness, name="liveness", daemon=True)
        self._prober.start()
        return self

    def ready(self, pod: Pod) -> bool:
        return pod.worker.exited() is None and answers_ok(pod.url + self.readiness.path, self.readiness.timeout)

    def wait_ready(self, pods: list[Pod] | None = None, timeout: float = 180) -> float:
        """Seconds until every pod (or those given) passed its readiness probe."""
        started = time.monotonic()
        waiting = list(self.pods if pods is None else pods)
        while waiting:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{', '.join(p.name for p in waiting)} not ready within {timeout:g} s:\n{waiting[0].worker.tail()}")
            for pod in list(waiting):
                pod.worker.check_alive()
                if self.ready(pod):
                    waiting.remove(pod)
            if waiting:
                time.sleep(min(self.readiness.period, 0.5))
        return time.monotonic() - started

    def restart(self, pod: Pod) -> float:
        """Stop the pod as the kubelet does (SIGTERM, SIGKILL after the grace period) and start it again; seconds it took to stop."""
        with self._lock:
            began = time.monotonic()
            if pod.worker.stop(self.grace) is None:
                self.say(f"{pod.name}: killed after the grace period of {self.grace:g} s")
            stopped = time.monotonic() - began
            pod.worker.start()
            pod.liveness_failures = 0
        return stopped

    def roll(self, on_step: Callable[[Pod, str], None] = lambda pod, step: None) -> list[dict[str, float]]:
        """RollingUpdate: each pod restarted, highest ordinal first, the next once it is ready; what each step took."""
        steps = []
        for pod in sorted(self.pods, key=lambda p: p.ordinal, reverse=True):
            on_step(pod, "stopping")
            stopped = self.restart(pod)
            on_step(pod, "started")
            ready = self.wait_ready([pod])
            on_step(pod, "ready")
            self.say(f"{pod.name}: stopped in {stopped:.1f} s, ready {ready:.1f} s after its start")
            steps.append({"ordinal": pod.ordinal, "stop_s": stopped, "ready_s": ready})
        return steps

    def _probe_liveness(self) -> None:
        while not self._stop.wait(self.liveness.period):
            for pod in self.pods:
                with self._lock:
                    if pod.worker.exited() is not None:
                        continue
                    if answers_ok(pod.url + self.liveness.path, self.liveness.timeout):
                        pod.liveness_failures = 0
                        continue
                    pod.liveness_failures += 1
                    if pod.liveness_failures < self.liveness.failure_threshold:
                        continue
                self.say(f"{pod.name}: liveness failed {pod.liveness_failures} times in a row; restarting it")
                pod.liveness_restarts += 1
                self.restart(pod)

    def stop(self) -> None:
        """Stop every pod (SIGTERM, SIGKILL after the grace period)."""
        self._stop.set()
        if self._prober is not None:
            self._prober.join(self.liveness.period + self.liveness.timeout + 5)
        for pod in self.pods:
            pod.worker.stop(self.grace)

    def __enter__(self) -> LocalStatefulSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pods_of(sts: LocalStatefulSet) -> Iterator[str]:
    for pod in sts.pods:
        yield f"{pod.name}  {pod.url}  data: {pod.worker.env['BORDERFLOW_DATA_DIR']}  log: {pod.worker.log}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local_run", description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the pods and keep them running until Ctrl-C; SIGUSR1 rolls them")
    up.add_argument("--kafka", default="127.0.0.1:9092")
    up.add_argument("--replicas", type=int, default=None, help="default: the manifest's")
    up.add_argument("--dir", type=Path, default=Path(".borderflow/local"), help="the pods' volumes and logs")
    up.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="an environment variable over the manifest's")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    sts = LocalStatefulSet(args.kafka, args.dir, args.replicas, overrides, say=lambda line: print(line, flush=True))
    roll_wanted = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: roll_wanted.set())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with sts:
        sts.start()
        print(f"ready in {sts.wait_ready():.1f} s:", *_pods_of(sts), sep="\n", flush=True)
        try:
            while True:
                if roll_wanted.wait(1):
                    roll_wanted.clear()
                    sts.roll()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
