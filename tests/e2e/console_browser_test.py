#!/usr/bin/env python3
"""The web console in headless Chromium against a real coordinator and worker.

A coordinator (--http-listen, --auth-tokens) and one CPU worker train a tiny synthetic job; a
second job, named like an HTML injection and asking for two ranks, stays queued. Checks, each
saving a screenshot under --out:
  list        the training job appears in the job list
  live        its loss chart gains points while it trains and its state reaches SUCCEEDED without
              a reload (a marker set in the page survives)
  download    the checkpoint's Download button saves a file whose SHA-256 is the API's
  escaped     the injected name shows as those characters, creates no element, raises no alert
  cancel      a viewer token is refused (the job stays QUEUED), an admin token cancels

Exit 77 (ctest SKIP_RETURN_CODE) with the reason when Chromium, chromedriver or Selenium is
missing. Runs as root: Chromium gets --no-sandbox and --headless=new.
"""
import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

SKIP = 77
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INJECTED_NAME = "<img src=x onerror=alert(1)>"
TOKENS = {"admin-secret": ("ada", "admin"), "viewer-secret": ("vera", "viewer"),
          "worker-secret": ("wes", "worker")}

TINY_SPEC = """\
name: console-tiny
labels:
  suite: console
model: {preset: custom, dim: 32, depth: 2, heads: 2, patch_size: 4, in_channels: 3,
        drop_path_rate: 0}
head: {out_dim: 256, hidden_dim: 64, bottleneck_dim: 32}
data: {kind: DATASET_KIND_SYNTHETIC, synthetic_images: 256, synthetic_classes: 4,
       synthetic_image_size: 16, loader_threads: 1}
augmentation: {global_crop_size: 16, local_crop_size: 8, n_local_crops: 2}
optim: {epochs: %(epochs)d, batch_size_per_rank: %(batch)d, warmup_epochs: 1}
dino: {warmup_teacher_temp_epochs: 1}
resources: {world_size: %(world)d, threads_per_rank: 1}
checkpoint: {every_steps: 40}
progress_every_steps: 1
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def skip(reason):
    print(f"SKIPPED: {reason}")
    sys.exit(SKIP)


def wait_for(what, predicate, timeout=60.0, interval=0.25):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # A page still rendering: try again.
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


class Service:
    """The coordinator and worker processes, and the JSON API as the admin sees it."""

    def __init__(self, args, work):
        self.work = work
        self.grpc = f"127.0.0.1:{free_port()}"
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.dinoctl = args.dinoctl
        self.procs = []
        tokens = os.path.join(work, "tokens")
        with open(tokens, "w") as f:
            for token, (name, role) in TOKENS.items():
                f.write(f"{hashlib.sha256(token.encode()).hexdigest()} {name} {role}\n")
        with open(os.path.join(work, "worker-token"), "w") as f:
            f.write("worker-secret")
        self.start([args.coordinator, "--listen", self.grpc, "--data-dir", f"{work}/coordinator",
                    "--metrics-port", "0", "--http-listen", f"127.0.0.1:{self.http_port}",
                    "--auth-tokens", tokens], "coordinator.log")
        wait_for("the coordinator's HTTP listener", lambda: self.try_get("/api/v1/workers"))
        self.worker_argv = [args.worker, "--coordinator", self.grpc, "--device", "cpu", "--threads", "1",
                    "--rendezvous-port", str(free_port()), "--advertise-host", "127.0.0.1",
                    "--name", "browser-worker", "--work-dir", f"{work}/worker",
                    "--token-file", f"{work}/worker-token"]

    # The worker starts once the job's page is open, so that the page sees the whole run: a tiny
    # job trains in seconds, less than a loaded machine may take to open the page.
    def start_worker(self):
        self.start(self.worker_argv, "worker.log")

    def start(self, argv, log):
        out = open(os.path.join(self.work, log), "w")
        self.procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT))

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()

    def try_get(self, path):
        try:
            return self.get(path)
        except OSError:
            return None

    def get(self, path, token="admin-secret"):
        request = urllib.request.Request(self.url + path,
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def submit(self, name, world, epochs):
        spec = os.path.join(self.work, f"spec-{world}-{epochs}.yaml")
        with open(spec, "w") as f:
            f.write(TINY_SPEC % {"epochs": epochs, "batch": 32 // world, "world": world})
        out = subprocess.run([self.dinoctl, "--coordinator", self.grpc, "--token", "admin-secret",
                              "submit", spec, "--set", f"name={name}"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise AssertionError(f"dinoctl submit failed: {out.stderr}")
        return out.stdout.splitlines()[0].strip()


def browser(download_dir):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,2200"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": download_dir, "download.prompt_for_download": False,
        "safebrowsing.enabled": False})
    return webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)


def main():
    parser = argparse.ArgumentParser()
    for flag in ("--coordinator", "--worker", "--dinoctl", "--out"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            skip(f"{path} is not installed (Debian package {package}; scripts/install-deps)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        skip("Selenium is not installed (Debian package python3-selenium; scripts/install-deps)")
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="console_browser_", dir=os.environ.get("TEST_TMPDIR"))
    downloads = os.path.join(work, "downloads")
    os.makedirs(downloads)
    service = Service(args, work)
    driver = None
    failures = []
    try:
        trained = service.submit("console-tiny", world=1, epochs=30)  # 240 steps
        queued = service.submit(INJECTED_NAME, world=2, epochs=1)  # One worker: never starts.
        driver = browser(downloads)
        driver.get(service.url + "/console/")
        token_input = wait_for("the token prompt",
                               lambda: driver.find_element(By.ID, "token-input").is_displayed()
                               and driver.find_element(By.ID, "token-input"))
        token_input.send_keys("admin-secret")
        driver.find_element(By.ID, "token-save").click()

        def check(name, body):
            try:
                body()
                print(f"PASS {name}")
            except Exception:
                failures.append(name)
                print(f"FAIL {name}\n{traceback.format_exc()}")
            finally:
                driver.save_screenshot(os.path.join(args.out, f"{name}.png"))

        def row_of(job):
            return driver.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{job}"]')

        def listed():
            driver.get(service.url + "/console/#/jobs")
            row = wait_for("the job's row", lambda: row_of(trained))
            assert "console-tiny" in row.text, row.text

        # Read in one script: the summary is rebuilt on every progress event, so an element
        # found first and read later is often gone.
        def state_text():
            return driver.execute_script(
                "const e = document.getElementById('job-state'); return e ? e.textContent : '';")

        def points():
            return int(driver.execute_script(
                "const e = document.getElementById('chart-card-loss');"
                "return e ? e.getAttribute('data-points') : 0;"))

        def live():
            driver.get(service.url + f"/console/#/jobs/{trained}")
            driver.execute_script("window.__noReload = 'still here';")
            wait_for("the job's page, QUEUED", lambda: state_text() == "QUEUED")
            service.start_worker()
            wait_for("the job to run", lambda: state_text() == "RUNNING", timeout=120)
            first = wait_for("the first points while RUNNING",
                             lambda: state_text() == "RUNNING" and points() > 0 and points())
            wait_for("more points while RUNNING",
                     lambda: state_text() == "RUNNING" and points() > first)
            driver.save_screenshot(os.path.join(args.out, "live-running.png"))
            wait_for("SUCCEEDED without a reload", lambda: state_text() == "SUCCEEDED",
                     timeout=240)
            assert driver.execute_script("return window.__noReload;") == "still here"
            wait_for("the last points", lambda: points() >= first)

        def download():
            checkpoints = service.get(f"/api/v1/jobs/{trained}/checkpoints")["checkpoints"]
            assert checkpoints, "no checkpoints"
            wanted = checkpoints[-1]
            button = wait_for("the checkpoint's Download button", lambda: driver.find_element(
                By.CSS_SELECTOR, f'button.download[data-checkpoint-id="{wanted["id"]}"]'))
            button.click()
            path = os.path.join(downloads, f"{trained}-{wanted['id']}.ckpt")
            wait_for("the downloaded file", lambda: os.path.exists(path) and not any(
                n.endswith(".crdownload") for n in os.listdir(downloads)), timeout=60)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            assert digest == wanted["sha256"], (digest, wanted["sha256"])
            assert os.path.getsize(path) == int(wanted["sizeBytes"])

        def escaped():
            driver.get(service.url + "/console/#/jobs")
            cell = wait_for("the queued job's row",
                            lambda: row_of(queued).find_element(By.CLASS_NAME, "job-name"))
            assert cell.text == INJECTED_NAME, repr(cell.text)
            assert driver.find_elements(By.CSS_SELECTOR, "img") == []
            driver.get(service.url + f"/console/#/jobs/{queued}")
            title = wait_for("the job page's title",
                             lambda: driver.find_element(By.ID, "job-title").text)
            assert INJECTED_NAME in title, repr(title)
            assert driver.find_elements(By.CSS_SELECTOR, "img") == []
            try:
                driver.switch_to.alert
                raise AssertionError("an alert opened")
            except NoAlertPresentException:
                pass

        def cancel():
            driver.execute_script("sessionStorage.setItem('dinotrain.token', 'viewer-secret');")
            driver.get(service.url + f"/console/#/jobs/{queued}")
            driver.refresh()
            wait_for("the cancel button", lambda: driver.find_element(By.ID, "cancel-job")
                     .is_displayed() and driver.find_element(By.ID, "cancel-job")).click()
            refused = wait_for("the refusal",
                               lambda: driver.find_element(By.ID, "cancel-error").text)
            assert refused.startswith("Cannot cancel:"), refused
            assert service.get(f"/api/v1/jobs/{queued}")["state"] == "JOB_STATE_QUEUED"
            driver.save_screenshot(os.path.join(args.out, "cancel-refused.png"))
            driver.execute_script("sessionStorage.setItem('dinotrain.token', 'admin-secret');")
            driver.refresh()
            wait_for("the cancel button", lambda: driver.find_element(By.ID, "cancel-job")
                     .is_displayed() and driver.find_element(By.ID, "cancel-job")).click()
            wait_for("CANCELLED", lambda: state_text() == "CANCELLED")
            assert service.get(f"/api/v1/jobs/{queued}")["state"] == "JOB_STATE_CANCELLED"

        for name, body in (("list", listed), ("live", live), ("download", download),
                           ("escaped", escaped), ("cancel", cancel)):
            check(name, body)
    finally:
        if driver is not None:
            driver.quit()
        service.stop()
    print(f"screenshots in {args.out}")
    if failures:
        print(f"failed: {', '.join(failures)}; logs in {work}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
