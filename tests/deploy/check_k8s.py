#!/usr/bin/env python3
"""Schema and consistency check of the Kubernetes manifests in deploy/k8s.

  check_k8s.py REPO_ROOT

Every file of kustomization.yaml must parse; every object must carry the fields its kind requires
(a small schema per kind, below); and the objects must fit together and do what the deployment promises:
the coordinator is a one-replica StatefulSet with a PVC on its --data-dir and native gRPC probes,
its Service exposes the gRPC and metrics ports; workers are a StatefulSet with one GPU per pod
behind a headless Service with the rendezvous port and NCCL settings; a ConfigMap with a
Prometheus config, a ServiceMonitor, NetworkPolicies and the Secret exist; both StatefulSets set
terminationGracePeriodSeconds. Service selectors must select pods and name ports that exist.
When kubectl is installed, `kubectl kustomize` must also build the same set of objects.
Exit 0 when all holds, 1 with one line per problem.
"""
import os
import subprocess
import sys

import yaml

# kind -> (apiVersion, required dotted paths)
SCHEMA = {
    "Namespace": ("v1", []),
    "Secret": ("v1", []),
    "ConfigMap": ("v1", ["data"]),
    "Service": ("v1", ["spec.ports", "spec.selector"]),
    "PersistentVolumeClaim": ("v1", ["spec.accessModes", "spec.resources.requests.storage"]),
    "StatefulSet": ("apps/v1", ["spec.selector.matchLabels", "spec.serviceName",
                                "spec.template.metadata.labels",
                                "spec.template.spec.containers"]),
    "NetworkPolicy": ("networking.k8s.io/v1", ["spec.podSelector", "spec.policyTypes"]),
    "ServiceMonitor": ("monitoring.coreos.com/v1", ["spec.selector", "spec.endpoints"]),
}
PROBE_KINDS = ("grpc", "httpGet", "tcpSocket", "exec")


def get(obj, path):
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def args_flag(container, flag):
    for arg in (container.get("command") or []) + (container.get("args") or []):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def check_object(obj, where):
    errors = []
    kind = obj.get("kind")
    name = get(obj, "metadata.name")
    if not kind or not obj.get("apiVersion") or not name:
        return [f"{where}: apiVersion, kind and metadata.name are required"]
    if kind not in SCHEMA:
        return [f"{where}: {kind} is not a kind this checker knows"]
    api, paths = SCHEMA[kind]
    if obj["apiVersion"] != api:
        errors.append(f"{where}: {kind} {name} must be {api}, got {obj['apiVersion']}")
    for path in paths:
        if get(obj, path) in (None, [], ""):
            errors.append(f"{where}: {kind} {name} lacks {path}")
    if kind == "StatefulSet":
        selector = get(obj, "spec.selector.matchLabels") or {}
        labels = get(obj, "spec.template.metadata.labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            errors.append(f"{where}: {name}: selector does not match the pod template's labels")
        for c in get(obj, "spec.template.spec.containers") or []:
            if not c.get("name") or not c.get("image"):
                errors.append(f"{where}: {name}: every container needs a name and an image")
            for p in c.get("ports") or []:
                if not isinstance(p.get("containerPort"), int):
                    errors.append(f"{where}: {name}: containerPort must be an integer")
            for probe in ("readinessProbe", "livenessProbe"):
                if probe in c and not any(k in c[probe] for k in PROBE_KINDS):
                    errors.append(f"{where}: {name}: {probe} has no handler")
    if kind == "Service":
        for p in get(obj, "spec.ports") or []:
            if not isinstance(p.get("port"), int) or not p.get("name"):
                errors.append(f"{where}: Service {name}: every port needs a name and an int port")
    return errors


def statefulset_checks(objects):
    errors = []
    by = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    sts = {n: o for (k, n), o in by.items() if k == "StatefulSet"}
    services = {n: o for (k, n), o in by.items() if k == "Service"}

    for name, s in services.items():
        selector = s["spec"]["selector"]
        pods = [o for o in sts.values()
                if all(get(o, "spec.template.metadata.labels").get(k) == v
                       for k, v in selector.items())]
        if not pods:
            errors.append(f"Service {name} selects no pods")
        names = {p.get("name") for o in pods for c in o["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports") or []}
        numbers = {p.get("containerPort") for o in pods
                   for c in o["spec"]["template"]["spec"]["containers"] for p in c.get("ports") or []}
        for p in s["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            if target not in names and target not in numbers:
                errors.append(f"Service {name}: targetPort {target} is no container port")

    coord = sts.get("dino-coordinator")
    if coord is None:
        return errors + ["no StatefulSet dino-coordinator"]
    if coord["spec"].get("replicas") != 1:
        errors.append("dino-coordinator must have exactly one replica")
    c = coord["spec"]["template"]["spec"]["containers"][0]
    data_dir = args_flag(c, "--data-dir")
    claims = {get(t, "metadata.name") for t in coord["spec"].get("volumeClaimTemplates") or []}
    if not any(m["name"] in claims and m["mountPath"] == data_dir
               for m in c.get("volumeMounts") or []):
        errors.append(f"dino-coordinator: no PVC (volumeClaimTemplates) mounted on --data-dir "
                      f"{data_dir}")
    for probe in ("readinessProbe", "livenessProbe"):
        grpc = get(c, probe + ".grpc")
        if not grpc or grpc.get("port") != 50051:
            errors.append(f"dino-coordinator: {probe} must be a native gRPC probe on port 50051")
    svc_ports = {p["name"] for p in get(services.get("dino-coordinator", {}), "spec.ports") or []}
    if not {"grpc", "metrics"} <= svc_ports:
        errors.append("Service dino-coordinator must expose the grpc and metrics ports")

    worker = sts.get("dino-worker")
    if worker is None:
        return errors + ["no StatefulSet dino-worker"]
    w = worker["spec"]["template"]["spec"]["containers"][0]
    if str(get(w, "resources.limits") and w["resources"]["limits"].get("nvidia.com/gpu")) != "1":
        errors.append("dino-worker: each pod must hold exactly one GPU (nvidia.com/gpu: 1)")
    headless = services.get(worker["spec"]["serviceName"])
    if headless is None or headless["spec"].get("clusterIP") != "None":
        errors.append("dino-worker: its serviceName must be a headless Service (clusterIP: None)")
    elif not any(p["name"] == "rendezvous" for p in headless["spec"]["ports"]):
        errors.append("dino-worker: the headless Service must expose the rendezvous port")
    if not any(e.get("name", "").startswith("NCCL_") for e in w.get("env") or []):
        errors.append("dino-worker: no NCCL_* environment settings")
    for name, o in sts.items():
        if not isinstance(get(o, "spec.template.spec.terminationGracePeriodSeconds"), int):
            errors.append(f"{name}: terminationGracePeriodSeconds is not set")
    if (get(worker, "spec.template.spec.terminationGracePeriodSeconds") or 0) < 60:
        errors.append("dino-worker: terminationGracePeriodSeconds must allow a step and a "
                      "checkpoint upload (>= 60)")

    kinds = {k for k, _ in by}
    for needed in ("ConfigMap", "ServiceMonitor", "NetworkPolicy", "Secret"):
        if needed not in kinds:
            errors.append(f"no {needed}")
    for (k, n), o in by.items():
        if k == "ConfigMap" and "prometheus.yml" in (o.get("data") or {}):
            conf = yaml.safe_load(o["data"]["prometheus.yml"])
            jobs = {s.get("job_name") for s in conf.get("scrape_configs") or []}
            if not {"dino-coordinator", "dino-worker"} <= jobs:
                errors.append(f"ConfigMap {n}: prometheus.yml must scrape the coordinator and "
                              f"the workers")
    secrets = {n for k, n in by if k == "Secret"}
    for o in sts.values():
        for v in get(o, "spec.template.spec.volumes") or []:
            if "secret" in v and v["secret"]["secretName"] not in secrets:
                errors.append(f"{o['metadata']['name']}: Secret {v['secret']['secretName']} "
                              f"is not in the kustomization")
    return errors


def load(root):
    base = os.path.join(root, "deploy", "k8s")
    with open(os.path.join(base, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    objects, errors = [], []
    for resource in kustomization.get("resources") or []:
        path = os.path.join(base, resource)
        if not os.path.isfile(path):
            errors.append(f"kustomization.yaml: resource {resource} does not exist")
            continue
        with open(path) as f:
            for i, doc in enumerate(yaml.safe_load_all(f)):
                if doc is None:
                    continue
                errors += check_object(doc, f"{resource}#{i}")
                objects.append(doc)
    return objects, errors


def kubectl_kustomize(root, objects):
    try:
        r = subprocess.run(["kubectl", "kustomize", os.path.join(root, "deploy", "k8s")],
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return [f"kubectl kustomize: {r.stderr.strip()}"]
    built = {(o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(r.stdout) if o}
    ours = {(o["kind"], o["metadata"]["name"]) for o in objects}
    return [] if built == ours else [f"kubectl kustomize built {sorted(built)}, "
                                     f"the files hold {sorted(ours)}"]


def main(argv):
    root = argv[1]
    objects, errors = load(root)
    if not errors:
        errors += statefulset_checks(objects)
    tool = kubectl_kustomize(root, objects)
    print("kubectl kustomize:", "not installed, skipped" if tool is None else "ran")
    errors += tool or []
    for e in errors:
        print("deploy/k8s:", e)
    print(f"{len(objects)} objects checked")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
