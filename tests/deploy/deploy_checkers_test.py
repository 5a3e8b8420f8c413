#!/usr/bin/env python3
"""Self-test of the deployment checkers: the real files pass, and each broken copy fails with the
problem named (so the checks in check_compose.py, check_k8s.py and check_deploy_flags.py can
fail). Needs no build outputs and no docker/kubectl.

  deploy_checkers_test.py REPO_ROOT
"""
import copy
import os
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_compose  # noqa: E402
import check_deploy_flags  # noqa: E402
import check_k8s  # noqa: E402

ROOT = None


def compose():
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        return yaml.safe_load(f)


class ComposeTest(unittest.TestCase):
    def test_real_file_passes(self):
        self.assertEqual(check_compose.check(compose(), ROOT), [])

    def assertFails(self, c, needle):
        errors = check_compose.check(c, ROOT)
        self.assertTrue(any(needle in e for e in errors), f"{needle!r} not in {errors}")

    def test_gpu_worker_needs_the_nvidia_reservation(self):
        c = compose()
        del c["services"]["worker-gpu"]["deploy"]
        self.assertFails(c, "NVIDIA device reservation")

    def test_dataset_must_be_read_only(self):
        c = compose()
        vols = c["services"]["worker-0"]["volumes"]
        c["services"]["worker-0"]["volumes"] = [v.replace(":ro", "") for v in vols]
        self.assertFails(c, "Fashion-MNIST")

    def test_coordinator_data_dir_needs_a_named_volume(self):
        c = compose()
        c["services"]["coordinator"]["volumes"] = ["coordinator-data:/elsewhere"]
        self.assertFails(c, "named volume")

    def test_two_cpu_workers(self):
        c = compose()
        del c["services"]["worker-1"]
        self.assertFails(c, "two CPU workers")

    def test_grafana_dashboards_on_the_provider_path(self):
        c = compose()
        c["services"]["grafana"]["volumes"] = [
            v.replace("/var/lib/grafana/dashboards", "/tmp/x")
            for v in c["services"]["grafana"]["volumes"]]
        self.assertFails(c, "provider's path")

    def test_coordinator_ports_on_loopback_only(self):
        c = compose()
        c["services"]["coordinator"]["ports"] = ["50051:50051", "127.0.0.1:9464:9464"]
        self.assertFails(c, "port 50051:50051 is published on every host interface")
        c["services"]["coordinator"]["ports"] = [{"target": 50051, "published": 50051}]
        self.assertFails(c, "every host interface")
        c["services"]["coordinator"]["ports"] = [
            {"target": 50051, "published": 50051, "host_ip": "127.0.0.1"}, "[::1]:9464:9464"]
        self.assertEqual(check_compose.check(c, ROOT), [])

    def test_unauthenticated_services_on_loopback_only(self):
        c = compose()
        c["services"]["notebook"] = {"image": "jupyter/base-notebook", "ports": ["8888:8888"]}
        self.assertFails(c, "notebook: port 8888:8888 is published on every host interface")
        c["services"]["notebook"]["ports"] = ["127.0.0.1:8888:8888"]
        self.assertEqual(check_compose.check(c, ROOT), [])

    def test_short_grace_period(self):
        c = compose()
        c["services"]["worker-0"]["stop_grace_period"] = "5s"
        self.assertFails(c, "stop_grace_period")


class K8sTest(unittest.TestCase):
    def setUp(self):
        self.objects, errors = check_k8s.load(ROOT)
        self.assertEqual(errors, [])

    def find(self, objects, kind, name):
        return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)

    def assertFails(self, objects, needle):
        errors = check_k8s.statefulset_checks(objects)
        self.assertTrue(any(needle in e for e in errors), f"{needle!r} not in {errors}")

    def test_real_manifests_pass(self):
        self.assertEqual(check_k8s.statefulset_checks(self.objects), [])

    def test_coordinator_probes_must_be_native_grpc(self):
        objects = copy.deepcopy(self.objects)
        c = self.find(objects, "StatefulSet", "dino-coordinator")["spec"]["template"]["spec"]
        c["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 50051}}
        self.assertFails(objects, "native gRPC probe")

    def test_one_gpu_per_worker(self):
        objects = copy.deepcopy(self.objects)
        w = self.find(objects, "StatefulSet", "dino-worker")["spec"]["template"]["spec"]
        del w["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
        self.assertFails(objects, "nvidia.com/gpu")

    def test_worker_service_must_be_headless(self):
        objects = copy.deepcopy(self.objects)
        del self.find(objects, "Service", "dino-worker")["spec"]["clusterIP"]
        self.assertFails(objects, "headless")

    def test_service_target_port_must_exist(self):
        objects = copy.deepcopy(self.objects)
        self.find(objects, "Service", "dino-coordinator")["spec"]["ports"][0]["targetPort"] = "x"
        self.assertFails(objects, "targetPort x")

    def test_grace_period_required(self):
        objects = copy.deepcopy(self.objects)
        w = self.find(objects, "StatefulSet", "dino-worker")["spec"]["template"]["spec"]
        del w["terminationGracePeriodSeconds"]
        self.assertFails(objects, "terminationGracePeriodSeconds")

    def test_schema_per_kind(self):
        bad = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"},
               "spec": {"serviceName": "x"}}
        errors = check_k8s.check_object(bad, "t")
        self.assertTrue(any("spec.selector.matchLabels" in e for e in errors), errors)
        self.assertTrue(check_k8s.check_object({"kind": "Service"}, "t"))
        self.assertTrue(check_k8s.check_object(
            {"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "x"}}, "t"))


class FlagsTest(unittest.TestCase):
    FLAGS = {"dino-coordinator": {"--listen", "--data-dir", "--metrics-port"},
             "dino-worker": {"--metrics-port", "--rendezvous-port", "--work-dir"}}

    def check(self, inv):
        errors = []
        check_deploy_flags.check_invocation(inv, self.FLAGS, errors)
        return errors

    def test_unknown_flag(self):
        inv = check_deploy_flags.Invocation("t", "dino-worker", ["--metrics-port=9465", "--bogus"])
        self.assertEqual(self.check(inv), ["t: dino-worker has no flag --bogus (see its --help)"])

    def test_health_ports_follow_the_flags(self):
        inv = check_deploy_flags.Invocation("t", "dino-coordinator",
                                            ["--listen", "0.0.0.0:50051", "--metrics-port", "9464"])
        inv.health.append(["dino-healthcheck", "grpc", "127.0.0.1:50052"])
        self.assertTrue(any("gRPC health check" in e for e in self.check(inv)))
        w = check_deploy_flags.Invocation("t", "dino-worker", ["--metrics-port", "9465"])
        w.health.append(["dino-healthcheck", "http", "http://127.0.0.1:9466/metrics"])
        self.assertTrue(any("HTTP health check" in e for e in self.check(w)))
        k = check_deploy_flags.Invocation("deploy/k8s/x", "dino-worker", ["--metrics-port=9465"])
        k.ports = {"metrics": 9999}
        k.health.append(["http-probe", "metrics"])
        self.assertTrue(any("http-probe" in e for e in self.check(k)))

    def test_exposed_ports_and_mounts(self):
        inv = check_deploy_flags.Invocation("docker-compose.yml:c", "dino-coordinator",
                                            ["--listen", "0.0.0.0:50051", "--data-dir", "/d"])
        inv.exposed = {50052}
        inv.mounts = ["/elsewhere"]
        errors = self.check(inv)
        self.assertTrue(any("not exposed" in e for e in errors), errors)
        self.assertTrue(any("--data-dir /d is not on a mounted volume" in e for e in errors))

    def test_real_files_with_a_renamed_flag_fail(self):
        flags = {"dino-coordinator": {"--listen", "--metrics-port"},  # --data-dir "renamed"
                 "dino-worker": set(), "dinoctl": set()}
        errors = []
        for inv in check_deploy_flags.compose_invocations(ROOT):
            check_deploy_flags.check_invocation(inv, flags, errors)
        self.assertTrue(any("has no flag --data-dir" in e for e in errors), errors)

    def test_data_roots_must_cover_the_worker_mounts(self):
        c = check_deploy_flags.Invocation("deploy/k8s/a.yaml:c", "dino-coordinator",
                                          ["--data-roots=/data"])
        w = check_deploy_flags.Invocation("deploy/k8s/b.yaml:w", "dino-worker", [])
        w.mounts = ["/usr/share/datasets"]
        errors = []
        check_deploy_flags.check_data_roots([c, w], errors)
        self.assertEqual(len(errors), 1, errors)


if __name__ == "__main__":
    ROOT = sys.argv.pop(1)
    unittest.main()
