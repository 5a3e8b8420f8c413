#!/usr/bin/env python3
"""Checks docker-compose.yml against what the one-host deployment promises.

  check_compose.py REPO_ROOT

`docker compose config` runs first when the Compose plugin is installed (it parses and
normalises the file client-side, default and `gpu` profile). The structural check below always
runs, with or without it: a coordinator with a named volume on its --data-dir, two CPU workers,
Prometheus with deploy/prometheus, Grafana provisioned with the dashboard, Fashion-MNIST mounted
read-only on every worker, a `gpu` profile with a GPU worker holding an NVIDIA device
reservation, health checks, a stop grace period long enough for a graceful worker exit, and a
coordinator whose ports are published on the host's loopback only unless it serves TLS with
--auth-tokens.
Exit 0 when it holds, 1 with one line per problem otherwise.
"""
import os
import subprocess
import sys

import yaml

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def flag_value(command, flag):
    """The value of --flag in an argv list (`--flag v` or `--flag=v`), else None."""
    for i, arg in enumerate(command or []):
        if arg == flag and i + 1 < len(command):
            return command[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def parse_volume(spec):
    """(source, target, read_only) of a short-syntax volume string."""
    parts = spec.split(":")
    if len(parts) == 1:
        return None, parts[0], False
    return parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")


def published_host_ip(port):
    """The host address a `ports:` entry binds, or None when it is every interface."""
    if isinstance(port, dict):
        return port.get("host_ip")
    port = str(port)
    if port.startswith("["):
        return port[1:port.index("]")]
    parts = port.split(":")
    return parts[0] if len(parts) == 3 else None


def seconds(duration):
    units = {"s": 1, "m": 60, "h": 3600}
    duration = str(duration)
    if duration and duration[-1] in units:
        return float(duration[:-1]) * units[duration[-1]]
    return float(duration)


def is_worker(service):
    build = service.get("build") or {}
    return (service.get("entrypoint") == ["dino-worker"] or build.get("target") == "worker" or
            "cuda-worker" in str(build.get("dockerfile", "")))


def check(compose, root):
    errors = []
    services = compose.get("services") or {}
    volumes = compose.get("volumes") or {}

    def need(condition, message):
        if not condition:
            errors.append(message)

    for name, service in services.items():
        build = service.get("build")
        if isinstance(build, dict):
            context = os.path.join(root, build.get("context", "."))
            dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
            need(os.path.isfile(dockerfile), f"{name}: dockerfile {dockerfile} does not exist")
        for spec in service.get("volumes") or []:
            source, target, _ = parse_volume(spec)
            if source is None:
                continue
            if source.startswith("."):
                need(os.path.exists(os.path.join(root, source)),
                     f"{name}: bind mount source {source} does not exist in the repository")
            elif not source.startswith("/"):
                need(source in volumes, f"{name}: volume {source} is not declared under volumes:")

    coordinator = services.get("coordinator")
    need(coordinator is not None, "no `coordinator` service")
    if coordinator:
        data_dir = flag_value(coordinator.get("command"), "--data-dir")
        need(data_dir is not None, "coordinator: no --data-dir in its command")
        named = [parse_volume(v) for v in coordinator.get("volumes") or []]
        need(any(s in volumes and t == data_dir for s, t, _ in named),
             f"coordinator: no named volume mounted on its --data-dir {data_dir}")
        need("healthcheck" in coordinator, "coordinator: no healthcheck")
        command = coordinator.get("command")
        secured = (flag_value(command, "--auth-tokens") is not None and
                   flag_value(command, "--tls-cert") is not None)
        for port in coordinator.get("ports") or []:
            need(secured or published_host_ip(port) in ("127.0.0.1", "::1", "localhost"),
                 f"coordinator: port {port} is published on every host interface without TLS "
                 f"and --auth-tokens; bind it to loopback (\"127.0.0.1:HOST:CONTAINER\")")

    # Prometheus and Grafana (anonymous viewer) answer without credentials, like the workers'
    # metrics: whatever else publishes a port publishes it on the host's loopback only.
    for name, service in services.items():
        if name == "coordinator":
            continue
        for port in service.get("ports") or []:
            need(published_host_ip(port) in ("127.0.0.1", "::1", "localhost"),
                 f"{name}: port {port} is published on every host interface; it has no "
                 f"authentication, so bind it to loopback (\"127.0.0.1:HOST:CONTAINER\")")

    workers = {n: s for n, s in services.items() if is_worker(s)}
    cpu = [n for n, s in workers.items()
           if flag_value(s.get("command"), "--device") == "cpu" and not s.get("profiles")]
    need(len(cpu) >= 2, f"need two CPU workers outside profiles, found {cpu}")
    for name, service in workers.items():
        mounts = [parse_volume(v) for v in service.get("volumes") or []]
        need(any(s == FASHION_MNIST and ro for s, _, ro in mounts),
             f"{name}: Fashion-MNIST ({FASHION_MNIST}) is not mounted read-only")
        need("healthcheck" in service, f"{name}: no healthcheck")
        grace = service.get("stop_grace_period")
        need(grace is not None and seconds(grace) >= 30,
             f"{name}: stop_grace_period must give a graceful exit at least 30s, got {grace}")
        need(flag_value(service.get("command"), "--coordinator") == "coordinator:50051",
             f"{name}: --coordinator must be coordinator:50051")

    gpu = [n for n, s in workers.items() if "gpu" in (s.get("profiles") or [])]
    need(len(gpu) == 1, f"need one GPU worker in the `gpu` profile, found {gpu}")
    for name in gpu:
        service = workers[name]
        need((flag_value(service.get("command"), "--device") or "").startswith("cuda"),
             f"{name}: --device must be cuda:N")
        devices = (((service.get("deploy") or {}).get("resources") or {}).get("reservations")
                   or {}).get("devices") or []
        need(any(d.get("driver") == "nvidia" and "gpu" in (d.get("capabilities") or [])
                 for d in devices), f"{name}: no NVIDIA device reservation")

    prometheus = services.get("prometheus") or {}
    need(any(parse_volume(v)[0] in ("./deploy/prometheus", "deploy/prometheus")
             for v in prometheus.get("volumes") or []),
         "prometheus: deploy/prometheus is not mounted")
    grafana = services.get("grafana") or {}
    gmounts = {parse_volume(v)[0]: parse_volume(v)[1] for v in grafana.get("volumes") or []}
    need(gmounts.get("./deploy/grafana/provisioning") == "/etc/grafana/provisioning",
         "grafana: deploy/grafana/provisioning is not mounted on /etc/grafana/provisioning")
    provider = os.path.join(root, "deploy/grafana/provisioning/dashboards/dinotrain.yml")
    if os.path.isfile(provider):
        with open(provider) as f:
            path = yaml.safe_load(f)["providers"][0]["options"]["path"]
        need(gmounts.get("./deploy/grafana/dashboards") == path,
             f"grafana: deploy/grafana/dashboards must be mounted on {path} (the provider's path)")
    return errors


def docker_compose_config(root):
    """Errors from `docker compose config`, or None when the Compose plugin is not available."""
    try:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True,
                               timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        return None
    errors = []
    for profile in ([], ["--profile", "gpu"]):
        r = subprocess.run(["docker", "compose", *profile, "-f", "docker-compose.yml", "config",
                            "--quiet"], cwd=root, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            errors.append(f"docker compose {' '.join(profile)} config: {r.stderr.strip()}")
    return errors


def main(argv):
    root = argv[1]
    with open(os.path.join(root, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    errors = check(compose, root)
    tool = docker_compose_config(root)
    if tool is None:
        print("docker compose is not available: only the structural check ran")
    else:
        errors += tool
        print("docker compose config: ran")
    for e in errors:
        print("docker-compose.yml:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
