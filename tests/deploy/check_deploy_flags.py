#!/usr/bin/env python3
"""Cross-checks every flag, port and path that the deployment files pass to the binaries against
the binaries themselves, so that a renamed flag or a moved port breaks this test instead of a
deployment.

  check_deploy_flags.py REPO_ROOT BUILD_DIR COORDINATOR_BIN WORKER_BIN DINOCTL_BIN

Sources: docker-compose.yml, deploy/docker/*.Dockerfile (ENTRYPOINT/CMD/HEALTHCHECK/EXPOSE and the
build outputs they copy), deploy/k8s/*.yaml (container command/args, probes, ports, mounts), and
the `dinoctl ...` command lines in the code blocks of README.md and deploy/k8s/README.md. Checks:
  - every --flag given to dino-coordinator, dino-worker or dinoctl (and each dinoctl subcommand)
    appears in that program's real --help;
  - health checks and probes use the port of --listen (gRPC) or --metrics-port (HTTP); exposed
    and container ports match --listen/--metrics-port/--rendezvous-port;
  - --data-dir, --work-dir, --auth-tokens and --token-file point into volumes that are mounted in
    that container, and every worker of the same deployment mounts data under the coordinator's
    --data-roots;
  - the build outputs the Dockerfiles copy exist at those paths under BUILD_DIR.
Exit 0 when all holds, 1 with one line per problem.
"""
import glob
import json
import os
import re
import subprocess
import sys

import yaml

FLAG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")
PATH_FLAGS = ("--data-dir", "--work-dir", "--auth-tokens", "--token-file")


def help_flags(argv):
    r = subprocess.run(argv + ["--help"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} --help failed: {r.stderr}")
    return set(FLAG.findall(r.stdout)), r.stdout


def subcommands(help_text):
    lines = help_text.split("Subcommands:", 1)
    if len(lines) < 2:
        return set()
    return {m.group(1) for m in re.finditer(r"^\s{2}([a-z][a-z-]*)\s", lines[1], re.M)}


def flag_value(argv, flag):
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def port_of(address):
    return int(str(address).rsplit(":", 1)[1]) if address and ":" in str(address) else None


class Invocation:
    """One way a binary is started: its argv, and what surrounds it in the same container."""

    def __init__(self, where, binary, argv):
        self.where, self.binary, self.argv = where, binary, list(argv or [])
        self.health = []       # argv lists of health checks / probe descriptions
        self.mounts = []       # container paths that are mounted
        self.ports = {}        # name (or number as str) -> container port
        self.exposed = set()   # EXPOSE / published container ports


def compose_invocations(root):
    with open(os.path.join(root, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    out = []
    for name, s in (compose.get("services") or {}).items():
        build = s.get("build") or {}
        binary = (s.get("entrypoint") or [None])[0]
        if binary is None and isinstance(build, dict):
            target = build.get("target")
            binary = {"coordinator": "dino-coordinator", "worker": "dino-worker"}.get(target)
            if "cuda-worker" in build.get("dockerfile", ""):
                binary = "dino-worker"
        if binary is None:
            continue
        inv = Invocation(f"docker-compose.yml:{name}", binary, s.get("command"))
        test = (s.get("healthcheck") or {}).get("test") or []
        if test[:1] == ["CMD"]:
            inv.health.append(test[1:])
        inv.mounts = [v.split(":")[1] for v in s.get("volumes") or [] if ":" in v]
        inv.exposed = {int(str(p).split(":")[-1]) for p in s.get("ports") or []}
        out.append(inv)
    return out


def dockerfile_instructions(path):
    """(stage, instruction, argument) with continuation lines joined."""
    with open(path) as f:
        text = re.sub(r"\\\n", " ", f.read())
    stage = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.search(r"\bAS\s+(\S+)", rest, re.I)
            stage = m.group(1) if m else rest
        yield stage, word, rest.strip()


def dockerfile_invocations(root, errors, build_dir):
    out = []
    for path in sorted(glob.glob(os.path.join(root, "deploy", "docker", "*Dockerfile"))):
        rel = os.path.relpath(path, root)
        stages = {}
        for stage, word, rest in dockerfile_instructions(path):
            info = stages.setdefault(stage, {"entry": None, "cmd": [], "health": None,
                                             "expose": set()})
            if word == "FROM":
                parent = rest.split()[0]
                if parent in stages:  # FROM runtime AS worker: inherit.
                    info.update({k: (set(v) if isinstance(v, set) else v)
                                 for k, v in stages[parent].items()})
            elif word == "ENTRYPOINT":
                info["entry"] = json.loads(rest)
            elif word == "CMD":
                info["cmd"] = json.loads(rest)
            elif word == "HEALTHCHECK":
                info["health"] = json.loads(rest.split(" CMD ", 1)[1])
            elif word == "EXPOSE":
                info["expose"] |= {int(p) for p in rest.split()}
            elif word == "RUN":
                for out_path in re.findall(r"/build/((?:server|worker|client)/[\w/.-]+)", rest):
                    if not os.path.isfile(os.path.join(build_dir, out_path)):
                        errors.append(f"{rel}: copies /build/{out_path}, which the build does "
                                      f"not produce")
        for stage, info in stages.items():
            if not info["entry"]:
                continue
            inv = Invocation(f"{rel}:{stage}", info["entry"][0], info["entry"][1:] + info["cmd"])
            if info["health"]:
                inv.health.append(info["health"])
            inv.exposed = info["expose"]
            out.append(inv)
    return out


def k8s_invocations(root):
    out = []
    for path in sorted(glob.glob(os.path.join(root, "deploy", "k8s", "*.yaml"))):
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            spec = (((doc.get("spec") or {}).get("template") or {}).get("spec")) or {}
            for c in spec.get("containers") or []:
                command = c.get("command") or []
                if not command:
                    continue
                inv = Invocation(f"{os.path.relpath(path, root)}:{c['name']}", command[0],
                                 command[1:] + (c.get("args") or []))
                for probe in ("readinessProbe", "livenessProbe"):
                    p = c.get(probe) or {}
                    if "grpc" in p:
                        inv.health.append(["grpc-probe", p["grpc"]["port"]])
                    if "httpGet" in p:
                        inv.health.append(["http-probe", p["httpGet"]["port"]])
                inv.ports = {p["name"]: p["containerPort"] for p in c.get("ports") or []}
                inv.exposed = set(inv.ports.values())
                inv.mounts = [m["mountPath"] for m in c.get("volumeMounts") or []]
                out.append(inv)
    return out


def readme_dinoctl_lines(root):
    out = []
    for rel in ("README.md", "deploy/k8s/README.md"):
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            fenced = False
            for n, line in enumerate(f, 1):
                if line.lstrip().startswith("```"):
                    fenced = not fenced
                    continue
                m = re.search(r"(?:^|[\s/])dinoctl\s+(.*)$", line.strip())
                if fenced and m and not line.lstrip().startswith(("#", "//")):
                    argv = re.split(r"\s+", m.group(1).split(" #")[0].strip().rstrip("\\`"))
                    out.append((f"{rel}:{n}", [a.strip("`") for a in argv if a]))
    return out


def resolve(value, inv):
    """Expands $(POD_NAME)-style references only to check the literal parts."""
    return re.sub(r"\$\([A-Z_]+\)", "x", value)


def check_invocation(inv, flags, errors):
    known = flags.get(inv.binary)
    if known is None:
        if inv.binary.startswith("dino"):
            errors.append(f"{inv.where}: unknown program {inv.binary}")
        return
    for arg in inv.argv:
        for flag in FLAG.findall(arg.split("=", 1)[0] if arg.startswith("--") else ""):
            if flag not in known:
                errors.append(f"{inv.where}: {inv.binary} has no flag {flag} (see its --help)")
    listen = port_of(flag_value(inv.argv, "--listen"))
    metrics = flag_value(inv.argv, "--metrics-port")
    metrics = int(metrics) if metrics else None
    rendezvous = flag_value(inv.argv, "--rendezvous-port")
    rendezvous = int(rendezvous) if rendezvous else None
    for h in inv.health:
        if h[0] == "dino-healthcheck" and len(h) >= 3 and h[1] == "grpc":
            if port_of(h[2]) != listen:
                errors.append(f"{inv.where}: gRPC health check on {h[2]}, but --listen is on "
                              f"port {listen}")
        elif h[0] == "dino-healthcheck" and len(h) >= 3 and h[1] == "http":
            m = re.match(r"https?://[^/:]+:(\d+)/metrics$", h[2])
            if not m or int(m.group(1)) != metrics:
                errors.append(f"{inv.where}: HTTP health check {h[2]}, but --metrics-port is "
                              f"{metrics} (path /metrics)")
        elif h[0] in ("grpc-probe", "http-probe"):
            port = inv.ports.get(h[1], h[1])
            want = listen if h[0] == "grpc-probe" else metrics
            if port != want:
                errors.append(f"{inv.where}: {h[0]} on port {h[1]} ({port}), but the flag says "
                              f"{want}")
        else:
            errors.append(f"{inv.where}: unrecognised health check {h}")
    for port in (listen, metrics, rendezvous):
        if port and inv.exposed and port not in inv.exposed:
            errors.append(f"{inv.where}: port {port} from the flags is not exposed/declared "
                          f"({sorted(inv.exposed)})")
    for named, port in (("grpc", listen), ("metrics", metrics), ("rendezvous", rendezvous)):
        if named in inv.ports and port and inv.ports[named] != port:
            errors.append(f"{inv.where}: containerPort {named} is {inv.ports[named]}, the flag "
                          f"says {port}")
    if inv.mounts or inv.where.startswith(("docker-compose", "deploy/k8s")):
        for flag in PATH_FLAGS:
            value = flag_value(inv.argv, flag)
            if value is None:
                continue
            for path in resolve(value, inv).split(","):
                inside = any(path == m or path.startswith(m.rstrip("/") + "/") or
                             m.startswith(path.rstrip("/") + "/") for m in inv.mounts)
                if not inside:
                    errors.append(f"{inv.where}: {flag} {path} is not on a mounted volume "
                                  f"({inv.mounts})")


def check_data_roots(invocations, errors):
    for coord in invocations:
        roots = flag_value(coord.argv, "--data-roots")
        if coord.binary != "dino-coordinator" or roots is None:
            continue
        deployment = coord.where.split(":")[0].split("/")[:2]
        for inv in invocations:
            if inv.binary != "dino-worker" or inv.where.split(":")[0].split("/")[:2] != deployment:
                continue
            if not any(m == r or m.startswith(r.rstrip("/") + "/")
                       for m in inv.mounts for r in roots.split(",")):
                errors.append(f"{inv.where}: mounts no data under the coordinator's --data-roots "
                              f"{roots} ({inv.mounts})")


def main(argv):
    root, build_dir, coordinator, worker, dinoctl = argv[1:6]
    flags = {}
    flags["dino-coordinator"], _ = help_flags([coordinator])
    flags["dino-worker"], _ = help_flags([worker])
    dinoctl_flags, dinoctl_help = help_flags([dinoctl])
    flags["dinoctl"] = dinoctl_flags
    errors = []
    invocations = (compose_invocations(root) + dockerfile_invocations(root, errors, build_dir) +
                   k8s_invocations(root))
    for inv in invocations:
        check_invocation(inv, flags, errors)
    check_data_roots(invocations, errors)
    subs = subcommands(dinoctl_help)
    sub_flags = {}
    lines = readme_dinoctl_lines(root)
    for where, args in lines:
        sub = next((a for a in args if not a.startswith("-") and a in subs), None)
        if sub is None:
            errors.append(f"{where}: `dinoctl {' '.join(args)}` names no dinoctl subcommand "
                          f"({sorted(subs)})")
            continue
        if sub not in sub_flags:
            sub_flags[sub], _ = help_flags([dinoctl, sub])
        for a in args:
            for flag in FLAG.findall(a.split("=", 1)[0] if a.startswith("--") else ""):
                if flag not in dinoctl_flags and flag not in sub_flags[sub]:
                    errors.append(f"{where}: dinoctl {sub} has no flag {flag}")
    for e in errors:
        print(e)
    print(f"checked {len(invocations)} invocations and {len(lines)} dinoctl command lines")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
