#!/usr/bin/env python3
"""The images' HEALTHCHECK command (deploy/docker/healthcheck.py) against the real binaries:
healthy while dino-coordinator serves grpc.health.v1 and while dino-worker serves /metrics,
unhealthy once they are gone or on the wrong port.

  healthcheck_test.py REPO_ROOT COORDINATOR_BIN WORKER_BIN
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = COORDINATOR = WORKER = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(*args):
    return subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "deploy/docker/healthcheck.py"),
                           *args], capture_output=True, text=True, timeout=30).returncode


def wait_healthy(*args):
    deadline = time.time() + 20
    while time.time() < deadline:
        if probe(*args) == 0:
            return True
        time.sleep(0.2)
    return False


class HealthcheckTest(unittest.TestCase):
    def start(self, argv):
        log = tempfile.TemporaryFile()
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait()))
        return p

    def test_coordinator_grpc_health(self):
        port = free_port()
        with tempfile.TemporaryDirectory() as data:
            p = self.start([COORDINATOR, "--listen", f"127.0.0.1:{port}", "--data-dir", data])
            self.assertTrue(wait_healthy("grpc", f"127.0.0.1:{port}"))
            self.assertNotEqual(probe("grpc", f"127.0.0.1:{free_port()}"), 0)
            self.assertNotEqual(probe("grpc", f"127.0.0.1:{port}", "no.such.Service"), 0)
            p.terminate()
            p.wait(timeout=30)
            self.assertNotEqual(probe("grpc", f"127.0.0.1:{port}"), 0)

    def test_worker_metrics_endpoint(self):
        port = free_port()
        with tempfile.TemporaryDirectory() as work:
            # No coordinator: the worker keeps retrying and serves /metrics meanwhile.
            p = self.start([WORKER, "--coordinator", f"127.0.0.1:{free_port()}", "--metrics-port",
                            str(port), "--rendezvous-port", str(free_port()), "--work-dir", work])
            self.assertTrue(wait_healthy("http", f"http://127.0.0.1:{port}/metrics"))
            p.kill()
            p.wait(timeout=30)
            self.assertNotEqual(probe("http", f"http://127.0.0.1:{port}/metrics"), 0)

    def test_usage(self):
        self.assertEqual(probe("tcp", "x"), 2)


if __name__ == "__main__":
    ROOT, COORDINATOR, WORKER = sys.argv[1:4]
    del sys.argv[1:4]
    unittest.main()
