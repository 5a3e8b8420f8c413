// dinoctl export against the FakeCoordinator serving a real checkpoint made by the core's Trainer:
// the written file holds the checkpoint's teacher backbone (the same tensors as the live teacher)
// and loads in /usr/bin/python3 with strict=True into the reference ViT (tests/e2e/load_export.py);
// an unknown job, a job without checkpoints, a corrupted download and a sha256-valid file that is
// not a checkpoint give clear errors and leave the output path untouched.
#include "client/export_command.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "client/dinoctl.h"
#include "common/file_system.h"
#include "common/sha256.h"
#include "tests/client/fake_coordinator.h"
#include "tests/worker/dino/test_util.h"
#include "worker/dino/collectives.h"
#include "worker/dino/trainer.h"

namespace dino::client {
namespace {

using testing::FakeCoordinator;
using ::testing::HasSubstr;

struct Result {
  int code;
  std::string out;
  std::string err;
};

dino::v1::CheckpointInfo Info(const std::string& id, int64_t step, const std::string& bytes) {
  dino::v1::CheckpointInfo info;
  info.set_id(id);
  info.set_job_id("job-1");
  info.set_attempt(1);
  info.set_step(step);
  info.set_size_bytes(static_cast<int64_t>(bytes.size()));
  info.set_sha256(Sha256::Of(bytes));
  return info;
}

class ExportCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const TrainConfig config = dino::testing::TinyConfig();
    dino::LocalCollectives collectives;
    dino::LocalGradientSync sync;
    auto trainer = dino::Trainer::Create(config, &collectives, &sync);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE((*trainer)->Step(dino::testing::MakeCrops(config, i)).ok());
    }
    auto checkpoint = (*trainer)->CheckpointBytes({});
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    for (const auto& item : (*trainer)->teacher_backbone()->named_parameters()) {
      teacher_[item.key()] = item.value().detach().clone();
    }

    coordinator_.Start();
    auto& s = coordinator_.service();
    dino::v1::Job job;
    job.set_id("job-1");
    job.set_state(dino::v1::JOB_STATE_RUNNING);
    s.AddJob(job);
    dino::v1::CheckpointInfo real = Info("ckpt-1", 2, *checkpoint);
    real.set_knn_top1(70.0);
    s.AddCheckpoint(real, *checkpoint);
    // The newest checkpoint matches its sha256 but is not a checkpoint at all.
    const std::string junk(4096, 'j');
    s.AddCheckpoint(Info("ckpt-2", 4, junk), junk);
    dino::v1::Job queued;
    queued.set_id("job-2");
    queued.set_state(dino::v1::JOB_STATE_QUEUED);
    s.AddJob(queued);
    dir_ = dino::testing::MakeTempDir("export_command");
  }

  Result Run(std::vector<std::string> args, bool with_export = true) {
    std::ostringstream out, err;
    DinoctlEnv env;
    env.out = &out;
    env.err = &err;
    env.coordinator_env = coordinator_.address();
    env.client_defaults.backoff = BackoffOptions{absl::Milliseconds(5), absl::Milliseconds(50)};
    if (with_export) env.export_command = RunExport;
    int code = RunDinoctl(args, env);
    return {code, out.str(), err.str()};
  }

  FakeCoordinator coordinator_;
  std::map<std::string, torch::Tensor> teacher_;
  std::string dir_;
};

TEST_F(ExportCommandTest, WritesTheTeacherBackboneThatPyTorchLoadsStrictly) {
  const std::string path = dir_ + "/teacher.pt";
  Result r = Run({"export", "job-1", "--checkpoint", "best", "-o", path});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(path + ": teacher backbone of job-1 from ckpt-1 (step 2)"));

  // The file holds exactly the teacher's backbone parameters under the reference names.
  dino::testing::TensorDict exported = dino::testing::ReadDict(path);
  for (const auto& [name, tensor] : teacher_) {
    ASSERT_TRUE(exported.count(name)) << name;
    EXPECT_EQ(dino::testing::MaxAbsDiff(exported[name], tensor), 0.0) << name;
  }
  for (const char* key : {"cls_token", "pos_embed", "patch_embed.proj.weight",
                          "blocks.1.attn.qkv.weight", "norm.weight"}) {
    EXPECT_TRUE(exported.count(key)) << key;
  }

  const std::string log = dir_ + "/load_export.log";
  const std::string cmd = absl::StrCat("/usr/bin/python3 ", std::getenv("DINO_SOURCE_ROOT"),
                                       "/tests/e2e/load_export.py ", path, " 2 > ", log, " 2>&1");
  EXPECT_EQ(std::system(cmd.c_str()), 0) << DefaultFileSystem()->ReadFile(log).value_or("");

  Result json = Run({"-o", "json", "export", "job-1", "--checkpoint", "ckpt-1", "-o", path});
  EXPECT_EQ(json.code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"id\": \"ckpt-1\""));
}

TEST_F(ExportCommandTest, ClearErrorsLeaveTheOutputUntouched) {
  const std::string path = dir_ + "/keep.pt";
  ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), path, "previous export").ok());
  auto untouched = [&] {
    return DefaultFileSystem()->ReadFile(path).value_or("") == "previous export";
  };

  Result missing = Run({"export", "job-404", "-o", path});
  EXPECT_EQ(missing.code, kExitNotFound);
  EXPECT_EQ(missing.err, "error: NOT_FOUND: no job job-404\n");

  Result empty = Run({"export", "job-2", "-o", path});
  EXPECT_EQ(empty.code, kExitNotFound);
  EXPECT_EQ(empty.err,
            "error: NOT_FOUND: job job-2 (QUEUED) has no checkpoint yet: nothing to export\n");

  Result not_a_checkpoint = Run({"export", "job-1", "-o", path});  // latest = ckpt-2, junk.
  EXPECT_EQ(not_a_checkpoint.code, kExitFailed);
  EXPECT_THAT(not_a_checkpoint.err, HasSubstr("error: DATA_LOSS: checkpoint ckpt-2 of job-1"));

  coordinator_.service().CorruptDownloads(true);
  Result corrupt = Run({"export", "job-1", "--checkpoint", "ckpt-1", "-o", path});
  EXPECT_EQ(corrupt.code, kExitFailed);
  EXPECT_THAT(corrupt.err, HasSubstr("error: DATA_LOSS: checkpoint ckpt-1 sha256 mismatch"));

  EXPECT_TRUE(untouched());
  auto names = DefaultFileSystem()->ListDir(dir_);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(names->size(), 1u) << "temporary files left behind";
}

TEST_F(ExportCommandTest, WithoutTheCoreExportIsUnimplemented) {
  Result r = Run({"export", "job-1", "-o", dir_ + "/x.pt"}, /*with_export=*/false);
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_THAT(r.err, HasSubstr("error: UNIMPLEMENTED: this dinoctl was built without LibTorch"));
}

}  // namespace
}  // namespace dino::client
