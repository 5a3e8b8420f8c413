#!/usr/bin/env python3
"""The images' HEALTHCHECK command (deploy/docker/healthcheck.py) against the real binaries:
healthy while dino-coordinator serves grpc.health.v1 (plaintext or TLS) and /metrics and while
dino-worker serves /metrics; unhealthy once they are gone, or on the wrong port or path.

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
        self.addCleanup(log.close)
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

    def test_http_metrics_endpoint(self):
        port, metrics = free_port(), free_port()
        with tempfile.TemporaryDirectory() as data:
            p = self.start([COORDINATOR, "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                            "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics)])
            self.assertTrue(wait_healthy("http", f"http://127.0.0.1:{metrics}/metrics"))
            self.assertNotEqual(probe("http", f"http://127.0.0.1:{metrics}/nothing"), 0)
            p.kill()
            p.wait(timeout=30)
            self.assertNotEqual(probe("http", f"http://127.0.0.1:{metrics}/metrics"), 0)

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

    def test_coordinator_grpc_health_over_tls(self):
        port = free_port()
        with tempfile.TemporaryDirectory() as d:
            def self_signed(name):
                key, cert = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
                subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                                "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                               check=True, capture_output=True)
                return key, cert

            key, cert = self_signed("server")
            _, other = self_signed("other")
            self.start([COORDINATOR, "--listen", f"127.0.0.1:{port}", "--data-dir", d,
                        "--tls-cert", cert, "--tls-key", key])
            self.assertTrue(wait_healthy("grpc", f"127.0.0.1:{port}", "--tls-ca", cert))
            self.assertNotEqual(probe("grpc", f"127.0.0.1:{port}"), 0)  # Plaintext is refused.
            self.assertNotEqual(probe("grpc", f"127.0.0.1:{port}", "--tls-ca", other), 0)

    def test_usage(self):
        self.assertEqual(probe("tcp", "x"), 2)
        self.assertEqual(probe("grpc", "h:1", "--tls-cert", "c"), 2)  # A cert needs --tls-ca.


if __name__ == "__main__":
    ROOT, COORDINATOR, WORKER = sys.argv[1:4]
    del sys.argv[1:4]
    unittest.main()
