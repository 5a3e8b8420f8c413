#!/usr/bin/python3
"""Checks that every metric the Grafana dashboard and the alert rules query is listed in
deploy/METRICS.md, the contract the coordinator and workers export.

Usage: check_dashboard_metrics.py METRICS.md DASHBOARD.json [ALERTS.yml ...]
       [--datasources PROVISIONING.yml] [--exposition SCRAPE.txt ...]

With --exposition (the /metrics output of real coordinator and worker processes, as
tests/e2e/metrics_e2e_test.cc scrapes it), every queried metric must also be exposed by one of
those files: a sample or a `# TYPE` declaration (a labelled family with no live series, such as GPU
memory on a CPU worker, is declared but has no sample), the `_bucket`/`_sum`/`_count` series of a
declared histogram, or a series Prometheus synthesises itself (`up`). And every metric listed in
METRICS.md for the coordinator or the worker must be exposed by them.

Also checks that the dashboard parses, has unique panel ids and refers to the provisioned
datasource uid. Standard library only (no PyYAML): the alert file is read for its `expr:` entries.
Exits 1 and lists every problem when a check fails.
"""
import argparse
import json
import re
import sys

PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def read_metric_table(path):
    """{name: type} from the rows of the markdown table whose first cell is a `name`."""
    metrics = {}
    for line in open(path, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"`[A-Za-z_:][A-Za-z0-9_:]*`", cells[0]):
            metrics[cells[0].strip("`")] = cells[1]
    return metrics


def metric_names(expr):
    """Metric names referenced by a PromQL expression (Grafana variables allowed)."""
    # Grafana's label_values(metric, label): only the metric is a metric name.
    expr = re.sub(r"label_values\(\s*([^,()]+?)\s*,\s*[A-Za-z_]\w*\s*\)", r" \1 ", expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges and subqueries
    expr = re.sub(r"\boffset\s+-?[\w$]+", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w:.$])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        token = match.group(0)
        if token.lower() in PROMQL_KEYWORDS:
            continue
        if re.match(r"\s*\(", expr[match.end():]):  # a function or aggregation
            continue
        names.add(token)
    return names


def known(name, metrics):
    if name in metrics:
        return True
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and metrics.get(base) == "histogram":
            return True
    return False


# Series Prometheus adds to every target itself; no binary exports them.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
             "scrape_samples_post_metric_relabeling", "scrape_series_added"}


def read_exposition(paths):
    """{name: type} from text exposition files: TYPE lines, plus sample names ('untyped')."""
    exposed = {}
    for path in paths:
        for line in open(path, encoding="utf-8"):
            match = re.match(r"#\s*TYPE\s+([A-Za-z_:][A-Za-z0-9_:]*)\s+(\w+)", line)
            if match:
                exposed[match.group(1)] = match.group(2)
                continue
            match = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)[{ ]", line)
            if match and not line.startswith("#"):
                exposed.setdefault(match.group(1), "untyped")
    return exposed


def listed_for_binaries(path):
    """Names of the METRICS.md rows whose Binary cell is coordinator, worker or both."""
    names = set()
    for line in open(path, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if (len(cells) >= 4 and re.fullmatch(r"`[A-Za-z_:][A-Za-z0-9_:]*`", cells[0]) and
                cells[3] in ("coordinator", "worker", "both")):
            names.add(cells[0].strip("`"))
    return names


def dashboard_queries(dashboard, problems):
    """(where, expr) for every panel target and templating query."""
    queries = []
    seen_ids = set()

    def walk(panels):
        for panel in panels:
            if panel.get("id") in seen_ids:
                problems.append(f"duplicate panel id {panel.get('id')}")
            seen_ids.add(panel.get("id"))
            for target in panel.get("targets", []):
                if "expr" in target:
                    queries.append((f"panel '{panel.get('title')}'", target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard.get("panels", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") == "query" and query:
            queries.append((f"variable '{variable.get('name')}'", query))
    return queries


def alert_queries(path):
    """(where, expr) for each `expr:` of a rules file, single-line or block scalar."""
    queries = []
    lines = open(path, encoding="utf-8").read().splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^(\s*)(?:- )?expr:\s*(.*)$", lines[i])
        i += 1
        if not match:
            continue
        indent, value = len(match.group(1)), match.group(2).strip()
        if value in ("|", ">", "|-", ">-"):
            block = []
            while i < len(lines) and (not lines[i].strip() or
                                      len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i])
                i += 1
            value = "\n".join(block)
        queries.append((f"{path}:{i}", value))
    return queries


def datasource_uids(dashboard):
    uids = set()

    def walk(node):
        if isinstance(node, dict):
            ds = node.get("datasource")
            if isinstance(ds, dict) and "uid" in ds:
                uids.add(ds["uid"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard)
    return uids


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("metrics_md")
    parser.add_argument("dashboard")
    parser.add_argument("alerts", nargs="*")
    parser.add_argument("--datasources")
    parser.add_argument("--exposition", nargs="+", default=[])
    args = parser.parse_args()

    problems = []
    metrics = read_metric_table(args.metrics_md)
    if len(metrics) < 10:
        problems.append(f"{args.metrics_md}: found only {len(metrics)} metrics in its table")
    try:
        dashboard = json.load(open(args.dashboard, encoding="utf-8"))
    except (OSError, ValueError) as error:
        print(f"FAIL: {args.dashboard} does not parse: {error}")
        return 1

    queries = dashboard_queries(dashboard, problems)
    if not queries:
        problems.append(f"{args.dashboard}: no queries found")
    for path in args.alerts:
        found = alert_queries(path)
        if not found:
            problems.append(f"{path}: no expr found")
        queries += found

    exposed = read_exposition(args.exposition) if args.exposition else None
    if exposed is not None:
        for name in sorted(listed_for_binaries(args.metrics_md) - set(exposed)):
            problems.append(f"'{name}' is listed in {args.metrics_md} but no scraped output "
                            f"exposes it")
    used = set()
    for where, expr in queries:
        names = metric_names(expr)
        if not names:
            problems.append(f"{where}: no metric name in query {expr!r}")
        for name in sorted(names):
            used.add(name)
            if not known(name, metrics):
                problems.append(f"{where}: metric '{name}' is not in {args.metrics_md}")
            if exposed is not None and name not in SYNTHETIC and not known(name, exposed):
                problems.append(f"{where}: metric '{name}' is not in the scraped output")

    if args.datasources:
        provisioned = set(re.findall(r"^\s*uid:\s*(\S+)", open(args.datasources).read(), re.M))
        for uid in sorted(datasource_uids(dashboard) - provisioned):
            problems.append(f"{args.dashboard}: datasource uid '{uid}' is not provisioned")

    for problem in problems:
        print(f"FAIL: {problem}")
    if problems:
        return 1
    where = f"{args.metrics_md} and the scraped output" if exposed is not None else args.metrics_md
    print(f"OK: {len(queries)} queries use {len(used)} metrics, all in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
