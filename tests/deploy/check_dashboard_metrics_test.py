#!/usr/bin/python3
"""Tests for check_dashboard_metrics.py: the checker must find the metric names in PromQL and must
fail on a dashboard that queries an unlisted metric, or else its pass proves nothing."""
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_dashboard_metrics as checker  # noqa: E402

TABLE = """| Metric | Type | Labels | Binary | Meaning |
|--------|------|--------|--------|---------|
| `dino_jobs` | gauge | `state` | coordinator | Jobs. |
| `dino_train_step_seconds` | histogram | `job`, `rank` | worker | Step. |
| `dino_train_images_total` | counter | `job`, `rank` | worker | Images. |
| `up` | gauge | | Prometheus | Up. |
""" + "".join(f"| `filler_{i}` | gauge | | x | y |\n" for i in range(10))


class MetricNamesTest(unittest.TestCase):
    def test_ignores_functions_labels_ranges_and_keywords(self):
        expr = ('histogram_quantile(0.9, sum by (le, exported_job) '
                '(rate(dino_train_step_seconds_bucket{exported_job=~"$job", x="a{b}"}[5m])))'
                ' / on (instance) group_left rate(dino_train_images_total[$__rate_interval])'
                ' and dino_jobs offset 10m > bool 1e-3')
        self.assertEqual(checker.metric_names(expr),
                         {"dino_train_step_seconds_bucket", "dino_train_images_total",
                          "dino_jobs"})

    def test_label_values_keeps_only_the_metric(self):
        self.assertEqual(checker.metric_names("label_values(dino_jobs, state)"), {"dino_jobs"})

    def test_histogram_suffixes_only_for_histograms(self):
        metrics = checker_table()
        self.assertTrue(checker.known("dino_train_step_seconds_count", metrics))
        self.assertFalse(checker.known("dino_jobs_count", metrics))
        self.assertFalse(checker.known("dino_train_step", metrics))


def checker_table():
    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as f:
        f.write(TABLE)
    try:
        return checker.read_metric_table(f.name)
    finally:
        os.unlink(f.name)


class MainTest(unittest.TestCase):
    def run_main(self, dashboard, alerts_text=None, expositions=None):
        with tempfile.TemporaryDirectory() as tmp:
            table = os.path.join(tmp, "METRICS.md")
            board = os.path.join(tmp, "dash.json")
            open(table, "w").write(TABLE)
            open(board, "w").write(dashboard if isinstance(dashboard, str)
                                   else json.dumps(dashboard))
            argv = ["check", table, board]
            if alerts_text is not None:
                alerts = os.path.join(tmp, "alerts.yml")
                open(alerts, "w").write(alerts_text)
                argv.append(alerts)
            if expositions is not None:
                argv.append("--exposition")
                for i, text in enumerate(expositions):
                    path = os.path.join(tmp, f"scrape{i}.txt")
                    open(path, "w").write(text)
                    argv.append(path)
            out = io.StringIO()
            old_argv, sys.argv = sys.argv, argv
            try:
                with contextlib.redirect_stdout(out):
                    code = checker.main()
            finally:
                sys.argv = old_argv
            return code, out.getvalue()

    @staticmethod
    def board(*exprs):
        return {"panels": [{"id": i, "title": f"p{i}", "targets": [{"expr": e}]}
                           for i, e in enumerate(exprs)]}

    def test_accepts_listed_metrics(self):
        code, out = self.run_main(self.board("sum(rate(dino_train_images_total[1m]))",
                                             "dino_train_step_seconds_sum"))
        self.assertEqual(code, 0, out)

    def test_rejects_unlisted_metric(self):
        code, out = self.run_main(self.board("dino_jobs", "rate(dino_not_exported_total[1m])"))
        self.assertEqual(code, 1)
        self.assertIn("dino_not_exported_total", out)

    def test_rejects_unparsable_dashboard(self):
        code, out = self.run_main("{not json")
        self.assertEqual(code, 1)
        self.assertIn("does not parse", out)

    def test_rejects_duplicate_panel_ids(self):
        board = self.board("dino_jobs", "up")
        board["panels"][1]["id"] = 0
        code, out = self.run_main(board)
        self.assertEqual(code, 1)
        self.assertIn("duplicate panel id", out)

    def test_reads_block_scalar_alert_expressions(self):
        alerts = ("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: |\n"
                  "          changes(dino_train_step_seconds_count[10m]) == 0\n"
                  "            and on (rank) dino_missing_gauge\n        labels: {}\n")
        code, out = self.run_main(self.board("up"), alerts)
        self.assertEqual(code, 1)
        self.assertIn("dino_missing_gauge", out)
        self.assertNotIn("dino_train_step_seconds_count'", out)


COORDINATOR_SCRAPE = """# HELP dino_jobs Jobs.
# TYPE dino_jobs gauge
dino_jobs{state="RUNNING"} 1
"""
WORKER_SCRAPE = """# HELP dino_train_step_seconds Step.
# TYPE dino_train_step_seconds histogram
dino_train_step_seconds_bucket{job="j",rank="0",le="+Inf"} 3
dino_train_step_seconds_sum{job="j",rank="0"} 0.3
dino_train_step_seconds_count{job="j",rank="0"} 3
# HELP dino_train_images_total Images.
# TYPE dino_train_images_total counter
"""


class ExpositionTest(unittest.TestCase):
    def setUp(self):
        self.main = MainTest()

    def test_accepts_names_exposed_by_samples_declarations_and_prometheus(self):
        code, out = self.main.run_main(
            MainTest.board("dino_jobs", "rate(dino_train_images_total[1m])",
                           "dino_train_step_seconds_count", "up"),
            expositions=[COORDINATOR_SCRAPE, WORKER_SCRAPE])
        self.assertEqual(code, 0, out)
        self.assertIn("scraped output", out)

    def test_rejects_a_listed_metric_no_process_exposes(self):
        code, out = self.main.run_main(MainTest.board("dino_jobs"),
                                       expositions=[COORDINATOR_SCRAPE])
        self.assertEqual(code, 1)
        self.assertIn("'dino_train_images_total' is listed", out)
        self.assertIn("'dino_train_step_seconds' is listed", out)
        self.assertNotIn("'dino_jobs' is listed", out)
        self.assertNotIn("'up' is listed", out)

    def test_rejects_a_queried_metric_missing_from_the_scrape(self):
        broken = WORKER_SCRAPE.replace("dino_train_images_total", "dino_other_total")
        code, out = self.main.run_main(
            MainTest.board("rate(dino_train_images_total[1m])"),
            expositions=[COORDINATOR_SCRAPE, broken])
        self.assertEqual(code, 1)
        self.assertIn("metric 'dino_train_images_total' is not in the scraped output", out)


if __name__ == "__main__":
    unittest.main()
