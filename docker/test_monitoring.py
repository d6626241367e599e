"""The monitoring files of the compose cluster must fit the cluster and the
metrics JaDFS exports: prometheus.yml scrapes every role with the token
monitoring.yml hands out, Grafana finds its data source and dashboard, and
every query of the dashboard parses (promtool) and names only metrics and
labels the Rust sources define. Nothing here starts a container.

    python3 -m unittest discover -s docker -p 'test_monitoring.py'

promtool comes with Debian's `prometheus` package.
"""

import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
COMPOSE = os.path.join(HERE, "docker-compose.yml")
MONITORING = os.path.join(HERE, "monitoring.yml")
PROMETHEUS = os.path.join(HERE, "prometheus.yml")
DASHBOARD = os.path.join(HERE, "grafana", "dashboards", "jadfs.json")
DATASOURCES = os.path.join(HERE, "grafana", "provisioning", "datasources", "prometheus.yml")
DASHBOARD_PROVIDERS = os.path.join(HERE, "grafana", "provisioning", "dashboards", "jadfs.yml")
METRICS_SOURCES = ["common/src/metrics.rs", "gateway/src/metrics.rs", "meta/src/metrics.rs", "storage-node/src/metrics.rs"]

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Series Prometheus makes itself for each target, and the labels it adds.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMETHEUS_LABELS = {"job", "instance"}
# What Grafana substitutes into a query before Prometheus sees it.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}

PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "atan2", "inf", "nan", "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}
MODIFIER_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def load_dashboard(path=DASHBOARD):
    with open(path) as f:
        return json.load(f)


def exported():
    """(series names, label names) the Rust sources define: each metric
    name constant (a histogram's with its suffixes) and each label key."""
    names, histograms, labels = set(), set(), set()
    for path in METRICS_SOURCES:
        with open(os.path.join(ROOT, path)) as f:
            source = f.read()
        consts = dict(re.findall(r'const\s+(\w+)\s*:\s*&(?:\'static\s+)?str\s*=\s*"(jadfs_\w+)"', source))
        names.update(consts.values())
        histograms.update(consts[c] for c in re.findall(r"describe_histogram!\(\s*(\w+)", source) if c in consts)
        labels.update(re.findall(r'"(\w+)"\s*=>', source))
    names.update(h + suffix for h in histograms for suffix in HISTOGRAM_SUFFIXES)
    if histograms:
        labels.add("le")
    return names | PROMETHEUS_SERIES, labels | PROMETHEUS_LABELS


def queries(dashboard):
    """(where, expr, legend) of every query, rows' folded panels included."""
    def walk(panels):
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    for panel in walk(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} ({panel['title']}) query {target['refId']}", target["expr"], target.get(
                "legendFormat", "")


def as_promql(expr):
    """The query as Grafana sends it (its variables substituted)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    unknown = re.findall(r"\$\{?\w+", expr)
    if unknown:
        raise ValueError(f"unknown Grafana variables {unknown}")
    return expr


def names_used(expr):
    """(metric names, label names) a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    labels = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels.update(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
    for names in MODIFIER_LISTS.findall(expr):
        labels.update(n.strip() for n in names.split(",") if n.strip())
    bare = MODIFIER_LISTS.sub(" ", re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr))
    metrics = set()
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)", bare):
        name = m.group(1)
        if name.lower() in PROMQL_KEYWORDS or re.match(r"\s*\(", bare[m.end():]):
            continue  # a keyword, a function or an aggregation
        metrics.add(name)
    return metrics, labels


def problems(dashboard, known=None):
    """What the dashboard's queries name that JaDFS does not export."""
    series, labels = known or exported()
    found = []
    for where, expr, legend in queries(dashboard):
        try:
            metrics, used = names_used(as_promql(expr))
        except ValueError as e:
            found.append(f"{where}: {e}")
            continue
        if not metrics:
            found.append(f"{where}: reads no metric")
        for name in sorted(metrics - series):
            found.append(f"{where}: {name} is not a metric JaDFS exports")
        used |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        for label in sorted(used - labels):
            found.append(f"{where}: no JaDFS metric has a label {label!r}")
    return found


def promtool(*args):
    if not shutil.which("promtool"):
        raise AssertionError("promtool is missing: apt-get install prometheus")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def promql_errors(dashboard):
    """promtool's verdict on every query, as recording rules."""
    rules, where_of = [], {}
    for i, (where, expr, _) in enumerate(queries(dashboard)):
        record = f"dashboard:query_{i}"
        where_of[record] = where
        try:
            rules.append({"record": record, "expr": as_promql(expr)})
        except ValueError as e:
            return f"{where}: {e}"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rules.yml")
        with open(path, "w") as f:
            json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)  # JSON is YAML
        done = promtool("check", "rules", path)
    if done.returncode == 0:
        return None
    output = done.stdout + done.stderr
    return re.sub(r"dashboard:query_\d+", lambda m: where_of.get(m.group(0), m.group(0)), output)


def jadfs_services():
    """{service: port its role listens on} of the cluster's compose file."""
    services = {}
    for name, service in load_yaml(COMPOSE)["services"].items():
        listen = re.search(r"--listen\s+\S*:(\d+)", service.get("command", ""))
        if "jadfs" in service.get("image", "") and listen:
            services[name] = int(listen.group(1))
    return services


class PrometheusConfig(unittest.TestCase):
    def test_promtool_accepts_it(self):
        done = promtool("check", "config", "--syntax-only", PROMETHEUS)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        # The full check also reads the token file, which only exists in the
        # Prometheus container: check a copy that points at a file that does.
        config = load_yaml(PROMETHEUS)
        with tempfile.TemporaryDirectory() as tmp:
            token = os.path.join(tmp, "metrics-token")
            with open(token, "w") as f:
                f.write("a-token")
            for job in config["scrape_configs"]:
                job["authorization"]["credentials_file"] = token
            path = os.path.join(tmp, "prometheus.yml")
            with open(path, "w") as f:
                yaml.safe_dump(config, f)
            done = promtool("check", "config", path)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_every_role_of_the_cluster_is_scraped_with_the_token(self):
        config = load_yaml(PROMETHEUS)
        targets = set()
        for job in config["scrape_configs"]:
            self.assertEqual(job.get("metrics_path", "/metrics"), "/metrics", job["job_name"])
            self.assertEqual(job["authorization"].get("type", "Bearer"), "Bearer", job["job_name"])
            self.assertEqual(job["authorization"]["credentials_file"], token_file(), job["job_name"])
            targets.update(t for sc in job["static_configs"] for t in sc["targets"])
        expected = {f"{name}:{port}" for name, port in jadfs_services().items()}
        self.assertEqual(len(expected), 9, "the compose file's roles were not all found")
        self.assertEqual(targets, expected)


def token_file():
    """Where monitoring.yml's Prometheus writes the token before it starts."""
    prometheus = load_yaml(MONITORING)["services"]["prometheus"]
    written = re.search(r'printf %s "\$\$JADFS_METRICS_TOKEN" > (\S+)', " ".join(prometheus["entrypoint"]))
    assert written, "monitoring.yml's Prometheus no longer writes the token file"
    return written.group(1)


class ComposeOverride(unittest.TestCase):
    def test_the_token_reaches_every_role_and_prometheus(self):
        services = load_yaml(MONITORING)["services"]
        for name in [*jadfs_services(), "prometheus"]:
            self.assertIn("${JADFS_METRICS_TOKEN:?", services[name]["environment"]["JADFS_METRICS_TOKEN"], name)

    def test_prometheus_keeps_the_token_on_a_tmpfs_and_reads_this_config(self):
        prometheus = load_yaml(MONITORING)["services"]["prometheus"]
        self.assertIn(os.path.dirname(token_file()), prometheus["tmpfs"])
        config_file = next(a.split("=", 1)[1] for a in prometheus["command"] if a.startswith("--config.file="))
        self.assertIn(f"./prometheus.yml:{config_file}:ro", prometheus["volumes"])

    def test_grafana_finds_prometheus_and_the_dashboard(self):
        grafana = load_yaml(MONITORING)["services"]["grafana"]
        mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.startswith("./"))
        (source,) = load_yaml(DATASOURCES)["datasources"]
        self.assertEqual(source["url"], "http://prometheus:9090")
        self.assertEqual(source["jsonData"]["timeInterval"], load_yaml(PROMETHEUS)["global"]["scrape_interval"])
        (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
        self.assertEqual(mounts["./grafana/dashboards"], provider["options"]["path"])
        self.assertEqual(mounts["./grafana/provisioning/datasources"], "/etc/grafana/provisioning/datasources")
        self.assertEqual(mounts["./grafana/provisioning/dashboards"], "/etc/grafana/provisioning/dashboards")
        home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        self.assertEqual(home, os.path.join(provider["options"]["path"], os.path.basename(DASHBOARD)))
        (variable,) = [v for v in load_dashboard()["templating"]["list"] if v["type"] == "datasource"]
        self.assertEqual(variable["current"]["value"], source["uid"])

    @unittest.skipUnless(shutil.which("docker-compose"), "docker-compose is not installed")
    def test_docker_compose_reads_both_files(self):
        env = {
            "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
            "JADFS_CLUSTER_SECRET": "0123456789abcdef0123456789abcdef", "JADFS_ACCESS_KEY": "jadfsci",
            "JADFS_SECRET_KEY": "jadfs-ci-secret-key", "GRAFANA_ADMIN_PASSWORD": "grafana-ci",
        }
        compose = ["docker-compose", "-f", COMPOSE, "-f", MONITORING, "config", "-q"]
        done = subprocess.run(compose, env={**env, "JADFS_METRICS_TOKEN": "t0ken"}, capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        # Without a token the roles would refuse Prometheus: compose says so.
        done = subprocess.run(compose, env=env, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("JADFS_METRICS_TOKEN", done.stderr)


class Dashboard(unittest.TestCase):
    def test_it_is_a_dashboard_grafana_provisions(self):
        dashboard = load_dashboard()
        self.assertEqual((dashboard["uid"], dashboard["title"]), ("jadfs", "JaDFS"))
        self.assertIsInstance(dashboard["schemaVersion"], int)
        panels = dashboard["panels"]
        ids = [p["id"] for p in panels]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        cells = {}
        for p in panels:
            pos = p["gridPos"]
            self.assertLessEqual(pos["x"] + pos["w"], 24, p["title"])
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    self.assertNotIn((x, y), cells, f"{p['title']} overlaps {cells.get((x, y))}")
                    cells[(x, y)] = p["title"]
            if p["type"] != "row":
                self.assertTrue(p["targets"], p["title"])
                self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])

    def test_every_query_parses(self):
        self.assertIsNone(promql_errors(load_dashboard()))

    def test_every_query_reads_only_what_jadfs_exports(self):
        self.assertEqual(problems(load_dashboard()), [])


class PlantedFaults(unittest.TestCase):
    """Each check must catch the mistake it exists for."""

    def planted(self, old, new):
        dashboard = load_dashboard()
        text = json.dumps(dashboard)
        self.assertIn(old, text)
        return json.loads(text.replace(old, new, 1))

    def test_a_misspelt_metric(self):
        found = problems(self.planted("jadfs_s3_requests_total", "jadfs_s3_request_total"))
        self.assertEqual(len(found), 1, found)
        self.assertIn("jadfs_s3_request_total is not a metric JaDFS exports", found[0])

    def test_a_histogram_suffix_on_a_counter(self):
        found = problems(self.planted("jadfs_node_chunk_writes_total", "jadfs_node_chunk_writes_total_bucket"))
        self.assertTrue(any("jadfs_node_chunk_writes_total_bucket" in p for p in found), found)

    def test_a_misspelt_label(self):
        found = problems(self.planted("sum by (op)", "sum by (operation)"))
        self.assertTrue(any("'operation'" in p for p in found), found)
        found = problems(self.planted("{{instance}}", "{{instnace}}"))
        self.assertTrue(any("'instnace'" in p for p in found), found)

    def test_an_unknown_grafana_variable(self):
        found = problems(self.planted("$__rate_interval", "$rate_interval"))
        self.assertTrue(any("unknown Grafana variables" in p for p in found), found)

    def test_a_query_that_does_not_parse(self):
        dashboard = self.planted("histogram_quantile(0.99, sum by", "histogram_quantile(0.99 sum by")
        errors = promql_errors(dashboard)
        self.assertIsNotNone(errors)
        self.assertIn("(S3 latency (p50, p99)) query B", errors)

    def test_the_name_check_sees_through_promql(self):
        metrics, labels = names_used(
            'histogram_quantile(0.99, sum by (op, le) (rate(a_bucket{x="y{z}", w!~"1e3"}[5m] offset 1h)))'
            " / on(instance) group_left(job) b + 1e3 * count(c) or vector(0) > bool inf")
        self.assertEqual(metrics, {"a_bucket", "b", "c"})
        self.assertEqual(labels, {"op", "le", "x", "w", "instance", "job"})


if __name__ == "__main__":
    unittest.main()
