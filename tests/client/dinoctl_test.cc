// dinoctl in-process (RunDinoctl) against the FakeCoordinator: golden outputs of list, get and
// metrics, submit with --set and a forced retry, watch exit codes and output modes, watch across a
// coordinator restart, download (verified, corrupted), errors and exit codes, --help everywhere.
//
// Golden files live in tests/client/testdata; DINO_UPDATE_GOLDEN=1 rewrites them.
#include "client/dinoctl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <thread>

#include "client/output.h"
#include "common/file_system.h"
#include "common/sha256.h"
#include "proto/dino/time_util.h"
#include "tests/client/fake_coordinator.h"

namespace dino::client {
namespace {

using testing::FakeCoordinator;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kNow = 1'800'000'000;

google::protobuf::Timestamp At(int64_t seconds) {
  return ToTimestampProto(absl::FromUnixSeconds(seconds));
}

std::string SourceRoot() {
  const char* root = std::getenv("DINO_SOURCE_ROOT");
  return root != nullptr ? root : ".";
}

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

dino::v1::JobEvent StateChange(dino::v1::JobState from, dino::v1::JobState to) {
  dino::v1::JobEvent e;
  e.mutable_state_change()->set_from_state(from);
  e.mutable_state_change()->set_to_state(to);
  return e;
}

struct Result {
  int code;
  std::string out;
  std::string err;
};

class DinoctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    coordinator_.Start();
    Populate();
  }

  Result Run(std::vector<std::string> args, bool tty = false, bool stderr_tty = false) {
    std::ostringstream out, err;
    DinoctlEnv env;
    env.out = &out;
    env.err = &err;
    env.clock = &clock_;
    env.stdout_is_tty = tty;
    env.stderr_is_tty = stderr_tty;
    env.coordinator_env = coordinator_.address();
    env.client_defaults.backoff = BackoffOptions{absl::Milliseconds(5), absl::Milliseconds(50)};
    env.client_defaults.reconnect_window = absl::Seconds(20);
    int code = RunDinoctl(args, env);
    return {code, out.str(), err.str()};
  }

  void ExpectGolden(const std::string& name, const std::string& actual) {
    std::string path = SourceRoot() + "/tests/client/testdata/" + name;
    if (std::getenv("DINO_UPDATE_GOLDEN") != nullptr) {
      ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), path, actual).ok());
      return;
    }
    auto expected = DefaultFileSystem()->ReadFile(path);
    ASSERT_TRUE(expected.ok()) << expected.status();
    EXPECT_EQ(actual, *expected) << "golden " << name;
  }

  void Populate() {
    auto& s = coordinator_.service();
    dino::v1::Job done;
    done.set_id("job-1");
    done.mutable_spec()->set_name("fashion");
    (*done.mutable_spec()->mutable_labels())["team"] = "vision";
    done.mutable_spec()->mutable_optim()->set_epochs(3);
    done.mutable_spec()->mutable_data()->set_kind(dino::v1::DATASET_KIND_IDX);
    done.mutable_spec()->mutable_data()->set_path("/data/train.gz");
    *done.mutable_submit_time() = At(kNow - 7200);
    *done.mutable_start_time() = At(kNow - 7000);
    *done.mutable_end_time() = At(kNow - 60);
    done.set_restarts(1);
    done.set_best_knn_top1(81.25);
    done.set_latest_checkpoint_id("ckpt-2");
    auto* a1 = done.add_attempts();
    a1->set_number(1);
    a1->set_state(dino::v1::ATTEMPT_STATE_FAILED);
    *a1->mutable_start_time() = At(kNow - 7000);
    *a1->mutable_end_time() = At(kNow - 5000);
    a1->set_failure_reason(dino::v1::FAILURE_REASON_WORKER_LOST);
    a1->set_failure_message("w-2 stopped heartbeating");
    auto* r = a1->add_ranks();
    r->set_rank(0);
    r->set_worker_id("w-2");
    r->set_worker_name("cpu-a");
    auto* a2 = done.add_attempts();
    a2->set_number(2);
    a2->set_state(dino::v1::ATTEMPT_STATE_SUCCEEDED);
    *a2->mutable_start_time() = At(kNow - 4900);
    *a2->mutable_end_time() = At(kNow - 60);
    a2->set_resume_checkpoint_id("ckpt-1");
    a2->set_resume_step(400);
    r = a2->add_ranks();
    r->set_rank(0);
    r->set_worker_id("w-3");
    r->set_worker_name("cpu-b");
    auto* stats = done.mutable_latest_stats();
    stats->set_step(1403);
    stats->set_epoch(2);
    stats->set_total_steps(1404);
    stats->set_loss(6.1234);
    stats->set_lr(0.00012);
    stats->set_teacher_entropy(3.5);
    stats->set_batch_mean_entropy(7.9);
    stats->set_kl(0.42);
    stats->set_teacher_temp(0.04);
    stats->set_images_per_second(312.5);
    auto* warning = done.add_collapse_warnings();
    warning->set_metric("kl");
    warning->set_value(5e-5);
    warning->set_threshold(1e-4);
    warning->set_step(300);
    warning->set_consecutive_reports(5);
    s.AddJob(done);
    s.AppendEvent("job-1",
                  StateChange(dino::v1::JOB_STATE_UNSPECIFIED, dino::v1::JOB_STATE_QUEUED));
    s.AppendEvent("job-1", StateChange(dino::v1::JOB_STATE_QUEUED, dino::v1::JOB_STATE_RUNNING));
    dino::v1::JobEvent progress;
    *progress.mutable_progress() = *stats;
    progress.mutable_progress()->set_step(699);
    *progress.mutable_progress()->mutable_time() = At(kNow - 3000);
    s.AppendEvent("job-1", progress);
    progress.mutable_progress()->set_step(1399);
    *progress.mutable_progress()->mutable_time() = At(kNow - 100);
    s.AppendEvent("job-1", progress);
    dino::v1::JobEvent ckpt;
    ckpt.mutable_checkpoint()->set_id("ckpt-2");
    ckpt.mutable_checkpoint()->set_step(1403);
    ckpt.mutable_checkpoint()->set_epoch(2);
    ckpt.mutable_checkpoint()->set_size_bytes(3 << 20);
    ckpt.mutable_checkpoint()->set_knn_top1(81.25);
    ckpt.mutable_checkpoint()->set_is_final(true);
    s.AppendEvent("job-1", ckpt);
    s.AppendEvent("job-1", StateChange(dino::v1::JOB_STATE_RUNNING, dino::v1::JOB_STATE_SUCCEEDED));

    blob_ = std::string(5000, 'x');
    for (size_t i = 0; i < blob_.size(); ++i) blob_[i] = static_cast<char>(i % 97);
    for (int i = 1; i <= 2; ++i) {
      dino::v1::CheckpointInfo info;
      info.set_id("ckpt-" + std::to_string(i));
      info.set_job_id("job-1");
      info.set_attempt(i);
      info.set_step(i == 1 ? 400 : 1403);
      info.set_epoch(i == 1 ? 0 : 2);
      info.set_size_bytes(static_cast<int64_t>(blob_.size()));
      info.set_sha256(Sha256::Of(blob_));
      info.set_loss(i == 1 ? 7.5 : 6.1234);
      if (i == 2) info.set_knn_top1(81.25);
      info.set_is_final(i == 2);
      *info.mutable_create_time() = At(kNow - (i == 1 ? 5500 : 60));
      s.AddCheckpoint(info, blob_);
    }

    dino::v1::Job running;
    running.set_id("job-2");
    running.mutable_spec()->set_name("");
    running.set_state(dino::v1::JOB_STATE_RUNNING);
    *running.mutable_submit_time() = At(kNow - 90);
    running.mutable_latest_stats()->set_step(49);
    running.mutable_latest_stats()->set_total_steps(200);
    s.AddJob(running);
    s.AppendEvent("job-2", StateChange(dino::v1::JOB_STATE_QUEUED, dino::v1::JOB_STATE_RUNNING));

    dino::v1::GetJobMetricsResponse metrics;
    auto* loss = metrics.add_series();
    loss->set_name("loss");
    auto* kl = metrics.add_series();
    kl->set_name("kl");
    for (int step : {0, 10, 20}) {
      auto* p = loss->add_points();
      p->set_step(step);
      p->set_value(11.0 - step * 0.1);
      if (step != 10) {
        auto* q = kl->add_points();
        q->set_step(step);
        q->set_value(0.5 + step * 0.01);
      }
    }
    s.SetMetrics("job-1", metrics);

    dino::v1::WorkerInfo worker;
    worker.set_id("w-3");
    worker.set_name("cpu-b");
    worker.set_hostname("host-b");
    worker.set_device("cpu");
    worker.set_threads(2);
    worker.set_state(dino::v1::WORKER_STATE_IDLE);
    *worker.mutable_last_heartbeat() = At(kNow - 3);
    s.AddWorker(worker);
  }

  SimulatedClock clock_{absl::FromUnixSeconds(kNow)};
  FakeCoordinator coordinator_;
  std::string blob_;
};

TEST_F(DinoctlTest, ListGolden) {
  Result table = Run({"list"});
  EXPECT_EQ(table.code, 0) << table.err;
  ExpectGolden("list.table", table.out);
  Result json = Run({"list", "-o", "json"});
  EXPECT_EQ(json.code, 0) << json.err;
  ExpectGolden("list.json", json.out);
  Result running = Run({"list", "--state", "running"});
  EXPECT_THAT(running.out, HasSubstr("job-2"));
  EXPECT_THAT(running.out, Not(HasSubstr("job-1")));
  Result labelled = Run({"list", "--label", "team=vision"});
  EXPECT_THAT(labelled.out, HasSubstr("job-1"));
  EXPECT_THAT(labelled.out, Not(HasSubstr("job-2")));
  EXPECT_EQ(Run({"list", "--state", "sleeping"}).code, kExitUsage);
}

TEST_F(DinoctlTest, GetGolden) {
  Result table = Run({"get", "job-1"});
  EXPECT_EQ(table.code, 0) << table.err;
  ExpectGolden("get.table", table.out);
  Result json = Run({"get", "job-1", "-o", "json"});
  EXPECT_EQ(json.code, 0) << json.err;
  ExpectGolden("get.json", json.out);
  for (const char* key :
       {"\"id\": \"job-1\"", "\"state\": \"JOB_STATE_SUCCEEDED\"", "\"restarts\": 1",
        "\"attempts\"", "\"checkpoints\"", "\"bestKnnTop1\": 81.25"}) {
    EXPECT_THAT(json.out, HasSubstr(key));
  }
  Result yaml = Run({"-o", "yaml", "get", "job-1"});
  EXPECT_EQ(yaml.code, 0) << yaml.err;
  EXPECT_THAT(yaml.out, HasSubstr("state: JOB_STATE_SUCCEEDED"));
}

TEST_F(DinoctlTest, GetAndListSayWhyAQueuedJobWaits) {
  const std::string reason =
      "waiting for 1 idle CUDA worker: no CUDA worker is registered (3 CPU workers do not match)";
  dino::v1::Job queued;
  queued.set_id("job-3");
  queued.mutable_spec()->set_name("gpu");
  queued.set_state(dino::v1::JOB_STATE_QUEUED);
  queued.set_message("waiting for a gang of workers");
  queued.set_queued_reason(reason);
  *queued.mutable_submit_time() = At(kNow - 30);
  coordinator_.service().AddJob(queued);

  Result get = Run({"get", "job-3"});
  EXPECT_EQ(get.code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr("State:      QUEUED\n"));
  EXPECT_THAT(get.out, HasSubstr("Waiting:    " + reason + "\n"));
  Result json = Run({"get", "job-3", "-o", "json"});
  EXPECT_THAT(json.out, HasSubstr("\"queuedReason\": \"" + reason + "\""));
  // A job that does not wait has no such line.
  EXPECT_THAT(Run({"get", "job-1"}).out, Not(HasSubstr("Waiting:")));

  Result list = Run({"list"});
  EXPECT_EQ(list.code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("RESTARTS  WAITING\n"));
  EXPECT_THAT(list.out, HasSubstr("job-3  gpu      QUEUED     -         30s  0         " + reason));
  EXPECT_THAT(list.out, HasSubstr("job-2  -        RUNNING    25%       90s  0         -\n"));
  // Without a waiting job the table keeps its columns (the golden list.table).
  EXPECT_THAT(Run({"list", "--state", "running"}).out, Not(HasSubstr("WAITING")));
}

TEST_F(DinoctlTest, MetricsGolden) {
  Result table = Run({"metrics", "job-1"});
  EXPECT_EQ(table.code, 0) << table.err;
  ExpectGolden("metrics.table", table.out);
  Result json = Run({"metrics", "job-1", "-o", "json"});
  EXPECT_EQ(json.code, 0) << json.err;
  ExpectGolden("metrics.json", json.out);
  Result csv = Run({"metrics", "job-1", "--series", "kl", "-o", "csv"});
  EXPECT_EQ(csv.code, 0) << csv.err;
  EXPECT_EQ(csv.out, "step,kl\n0,0.5\n20,0.7\n");
}

TEST_F(DinoctlTest, CheckpointsAndWorkers) {
  Result ckpts = Run({"checkpoints", "job-1"});
  EXPECT_EQ(ckpts.code, 0) << ckpts.err;
  EXPECT_THAT(ckpts.out, HasSubstr("ckpt-2  1403"));
  EXPECT_THAT(ckpts.out, HasSubstr("81.25%"));
  Result workers = Run({"workers"});
  EXPECT_EQ(workers.code, 0) << workers.err;
  EXPECT_THAT(workers.out, HasSubstr("w-3"));
  EXPECT_THAT(workers.out, HasSubstr("IDLE"));
}

TEST_F(DinoctlTest, SubmitPrintsTheIdAndAppliesSetUnderAForcedRetry) {
  std::string spec = TempDir() + "/dinoctl_submit_spec.yaml";
  ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), spec,
                                  "name: s\ndata:\n  kind: DATASET_KIND_SYNTHETIC\n")
                  .ok());
  coordinator_.service().LoseSubmitResponses(1);
  Result r = Run({"submit", spec, "--set", "optim.epochs=7", "--set", "labels.a.b=c"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "job-3\n");
  EXPECT_EQ(coordinator_.service().job_count(), 3);  // job-1, job-2 and one new job.
  Result json = Run({"get", "job-3", "-o", "json"});
  EXPECT_THAT(json.out, HasSubstr("\"epochs\": \"7\""));
  EXPECT_THAT(json.out, HasSubstr("\"a.b\": \"c\""));
  EXPECT_THAT(json.out, HasSubstr("\"requestId\": \"req-"));
}

TEST_F(DinoctlTest, BadSpecIsRejectedBeforeSending) {
  std::string spec = TempDir() + "/dinoctl_bad_spec.yaml";
  ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), spec, "name: s\noptim:\n  epoch: 3\n").ok());
  Result r = Run({"submit", spec});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_EQ(r.err, "error: INVALID_ARGUMENT: " + spec +
                       ":3: optim.epoch: unknown key (OptimSpec has no field \"epoch\")\n");
  EXPECT_EQ(coordinator_.service().submit_calls(), 0);
}

TEST_F(DinoctlTest, WatchExitCodesFollowTheFinalState) {
  Result succeeded = Run({"watch", "job-1"});
  EXPECT_EQ(succeeded.code, 0) << succeeded.err;
  EXPECT_THAT(succeeded.out, HasSubstr("#1 state UNSPECIFIED -> QUEUED"));
  EXPECT_THAT(succeeded.out, HasSubstr("progress epoch 2 step 1400/1404"));
  EXPECT_THAT(succeeded.out, HasSubstr("checkpoint ckpt-2 step 1403"));
  EXPECT_THAT(succeeded.out, HasSubstr("job-1 SUCCEEDED\n"));

  coordinator_.service().AppendEvent(
      "job-2", StateChange(dino::v1::JOB_STATE_RUNNING, dino::v1::JOB_STATE_FAILED));
  EXPECT_EQ(Run({"watch", "job-2"}).code, kExitFailed);

  dino::v1::Job queued;
  queued.set_id("job-7");
  coordinator_.service().AddJob(queued);
  coordinator_.service().AppendEvent(
      "job-7", StateChange(dino::v1::JOB_STATE_UNSPECIFIED, dino::v1::JOB_STATE_QUEUED));
  Result cancel = Run({"cancel", "job-7"});
  EXPECT_EQ(cancel.code, 0) << cancel.err;
  EXPECT_EQ(cancel.out, "job-7 CANCELLED\n");
  EXPECT_EQ(Run({"watch", "job-7"}).code, kExitFailed);
  EXPECT_EQ(Run({"watch", "job-404"}).code, kExitNotFound);
}

TEST_F(DinoctlTest, WatchModes) {
  Result json = Run({"watch", "job-1", "-o", "json"});
  EXPECT_EQ(json.code, 0);
  std::istringstream lines(json.out);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    ++count;
    EXPECT_EQ(line.front(), '{');
    EXPECT_EQ(line.back(), '}');
  }
  EXPECT_EQ(count, 6);
  Result tty = Run({"watch", "job-1"}, /*tty=*/true);
  EXPECT_EQ(tty.code, 0);
  EXPECT_THAT(tty.out, HasSubstr("\r\033[K["));  // The bar, redrawn in place.
  EXPECT_THAT(tty.out, HasSubstr("eta 16s"));    // 700 steps in 2900 s; 4 steps left.
}

TEST_F(DinoctlTest, WatchReconnectsAcrossACoordinatorRestart) {
  dino::v1::Job job;
  job.set_id("job-9");
  coordinator_.service().AddJob(job);
  coordinator_.service().AppendEvent(
      "job-9", StateChange(dino::v1::JOB_STATE_QUEUED, dino::v1::JOB_STATE_RUNNING));
  std::thread restarter([&] {
    while (coordinator_.service().watch_calls() == 0) absl::SleepFor(absl::Milliseconds(5));
    absl::SleepFor(absl::Milliseconds(50));
    coordinator_.Stop();
    absl::SleepFor(absl::Milliseconds(100));
    coordinator_.Start();
    coordinator_.service().AppendEvent(
        "job-9", StateChange(dino::v1::JOB_STATE_RUNNING, dino::v1::JOB_STATE_SUCCEEDED));
  });
  Result r = Run({"watch", "job-9"});
  restarter.join();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("reconnecting to the coordinator"));
  EXPECT_THAT(r.out, HasSubstr("#2 state RUNNING -> SUCCEEDED"));
}

TEST_F(DinoctlTest, DownloadVerifiesAndWritesAtomically) {
  std::string path = TempDir() + "/dinoctl_download.ckpt";
  DefaultFileSystem()->DeleteFile(path).IgnoreError();
  Result ok = Run({"download", "job-1", "--checkpoint", "ckpt-1", "-o", path});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("ckpt-1"));
  auto bytes = DefaultFileSystem()->ReadFile(path);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, blob_);

  std::string corrupt_path = TempDir() + "/dinoctl_download_corrupt.ckpt";
  DefaultFileSystem()->DeleteFile(corrupt_path).IgnoreError();
  coordinator_.service().CorruptDownloads(true);
  Result bad = Run({"download", "job-1", "-o", corrupt_path});
  EXPECT_EQ(bad.code, kExitFailed);
  EXPECT_THAT(bad.err, HasSubstr("error: DATA_LOSS: checkpoint ckpt-2 sha256 mismatch"));
  EXPECT_FALSE(DefaultFileSystem()->Exists(corrupt_path));
  auto leftovers = DefaultFileSystem()->ListDir(TempDir());
  ASSERT_TRUE(leftovers.ok());
  for (const auto& name : *leftovers) {
    EXPECT_THAT(name, Not(HasSubstr("dinoctl_download_corrupt.ckpt.tmp")));
  }
}

TEST_F(DinoctlTest, DownloadShowsProgressForLargeFilesOnATerminal) {
  std::string big(9 << 20, 'b');  // Progress starts at 8 MiB.
  dino::v1::CheckpointInfo info;
  info.set_id("ckpt-big");
  info.set_job_id("job-2");
  info.set_size_bytes(static_cast<int64_t>(big.size()));
  info.set_sha256(Sha256::Of(big));
  coordinator_.service().AddCheckpoint(info, big);
  coordinator_.service().SetChunkSize(1 << 20);
  std::string path = TempDir() + "/dinoctl_download_big.ckpt";
  Result tty = Run({"download", "job-2", "-o", path}, false, /*stderr_tty=*/true);
  EXPECT_EQ(tty.code, 0) << tty.err;
  EXPECT_THAT(tty.err, HasSubstr("\r\033[Kdownloading 1.0 MiB / 9.0 MiB (11%)"));
  EXPECT_THAT(tty.err, HasSubstr("downloading 9.0 MiB / 9.0 MiB (100%)\n"));
  Result piped = Run({"download", "job-2", "-o", path});
  EXPECT_EQ(piped.code, 0) << piped.err;
  EXPECT_EQ(piped.err, "");
  DefaultFileSystem()->DeleteFile(path).IgnoreError();
}

TEST_F(DinoctlTest, ErrorsAndExitCodes) {
  Result missing = Run({"get", "job-404"});
  EXPECT_EQ(missing.code, kExitNotFound);
  EXPECT_EQ(missing.err, "error: NOT_FOUND: no job job-404\n");
  Result usage = Run({"get"});
  EXPECT_EQ(usage.code, kExitUsage);
  EXPECT_EQ(Run({"frobnicate"}).code, kExitUsage);
  EXPECT_EQ(Run({"--timeout", "soon", "list"}).code, kExitUsage);
  Result down = Run({"--coordinator", "127.0.0.1:1", "list"});
  EXPECT_EQ(down.code, kExitUnavailable);
  EXPECT_THAT(down.err, HasSubstr("error: UNAVAILABLE: coordinator at 127.0.0.1:1 did not answer"));
}

TEST_F(DinoctlTest, HelpOnEveryCommandHasAnExample) {
  for (const char* command : {"submit", "list", "get", "watch", "cancel", "checkpoints", "download",
                              "export", "metrics", "workers"}) {
    Result help = Run({command, "--help"});
    EXPECT_EQ(help.code, 0) << command;
    EXPECT_THAT(help.out, HasSubstr("Example:\n  dinoctl ")) << command;
  }
  Result top = Run({"--help"});
  EXPECT_EQ(top.code, 0);
  EXPECT_THAT(top.out, HasSubstr("Exit codes"));
}

TEST(FormatProgressTest, ShowsEarlyProgressOfLongJobsAndNeverAnUnfinished100) {
  dino::v1::Job job;
  job.set_state(dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(FormatProgress(job), "-");
  auto* s = job.mutable_latest_stats();
  s->set_total_steps(2340);
  s->set_step(9);  // 10 of 2340 steps
  EXPECT_EQ(FormatProgress(job), "0.4%");
  s->set_step(233);  // 234 of 2340
  EXPECT_EQ(FormatProgress(job), "10%");
  s->set_step(2338);  // 2339 of 2340
  EXPECT_EQ(FormatProgress(job), "99%");
  s->set_step(2339);
  EXPECT_EQ(FormatProgress(job), "100%");
}

}  // namespace
}  // namespace dino::client
