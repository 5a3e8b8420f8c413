// WorkerRegistry on a SQLite store in memory (behind FaultyStore) and a simulated clock:
// registration and identity, credentials, streams, liveness and the stored records.
#include "server/worker_registry.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/dino/time_util.h"
#include "tests/server/faulty_store.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

using testing::FaultyStore;
using testing::RecordingChannel;
using Worker = WorkerRegistry::Worker;

dino::v1::RegisterRequest Request(const std::string& device = "cpu",
                                  const std::string& previous = "") {
  dino::v1::RegisterRequest request;
  request.set_name("worker");
  request.set_device(device);
  request.set_threads(2);
  request.set_rendezvous_address("127.0.0.1:29500");
  request.set_previous_worker_id(previous);
  return request;
}

class WorkerRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenSqliteStore(":memory:");
    ASSERT_TRUE(store.ok()) << store.status();
    auto faulty = std::make_unique<FaultyStore>(std::move(*store));
    faulty_ = faulty.get();
    store_ = std::move(faulty);
    registry_ = std::make_unique<WorkerRegistry>(store_.get(), &clock_);
  }

  Worker* Add(const std::string& device = "cpu", const std::string& credential = "anonymous",
              const std::string& previous = "") {
    const dino::v1::RegisterRequest request = Request(device, previous);
    absl::StatusOr<dino::v1::DeviceKind> kind = WorkerRegistry::CheckRegistration(request);
    EXPECT_TRUE(kind.ok()) << kind.status();
    absl::StatusOr<Worker*> worker = registry_->Register(request, *kind, credential);
    EXPECT_TRUE(worker.ok()) << worker.status();
    if (!worker.ok()) return nullptr;
    registry_->Save(**worker);
    return *worker;
  }

  std::vector<dino::v1::WorkerInfo> Stored() {
    auto stored = store_->LoadWorkers();
    EXPECT_TRUE(stored.ok()) << stored.status();
    return stored.ok() ? *stored : std::vector<dino::v1::WorkerInfo>();
  }

  SimulatedClock clock_;
  std::unique_ptr<Store> store_;
  FaultyStore* faulty_ = nullptr;
  std::unique_ptr<WorkerRegistry> registry_;
};

TEST_F(WorkerRegistryTest, CheckRegistrationNamesTheMalformedField) {
  dino::v1::RegisterRequest request = Request("gpu");
  absl::StatusOr<dino::v1::DeviceKind> kind = WorkerRegistry::CheckRegistration(request);
  EXPECT_EQ(kind.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(kind.status().message().find("device"), std::string::npos);
  request = Request("cuda:1");
  EXPECT_EQ(*WorkerRegistry::CheckRegistration(request), dino::v1::DEVICE_KIND_CUDA);
  request.clear_rendezvous_address();
  EXPECT_NE(
      WorkerRegistry::CheckRegistration(request).status().message().find("rendezvous_address"),
      std::string::npos);
  request = Request();
  request.set_threads(-1);
  EXPECT_NE(WorkerRegistry::CheckRegistration(request).status().message().find("threads"),
            std::string::npos);
}

TEST_F(WorkerRegistryTest, RegisterGivesNewIdleWorkersSequentialIdsBoundToTheirCredential) {
  Worker* a = Add("cpu", "alice");
  Worker* b = Add("cuda:0", "bob");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->info.id(), "w-1");
  EXPECT_EQ(b->info.id(), "w-2");
  EXPECT_LT(a->seq, b->seq);
  EXPECT_EQ(a->info.state(), dino::v1::WORKER_STATE_IDLE);
  EXPECT_EQ(a->info.registered_by(), "alice");
  EXPECT_EQ(b->info.device_kind(), dino::v1::DEVICE_KIND_CUDA);
  EXPECT_EQ(a->last_seen, clock_.Now());
  EXPECT_EQ(Stored().size(), 2u);
}

TEST_F(WorkerRegistryTest, APreviousIdKeepsTheIdentityForItsOwnCredentialOnly) {
  Worker* a = Add("cpu", "alice");
  a->info.set_state(dino::v1::WORKER_STATE_BUSY);
  clock_.Advance(absl::Seconds(5));
  Worker* again = Add("cpu", "alice", a->info.id());
  EXPECT_EQ(again, a);
  EXPECT_EQ(again->info.state(), dino::v1::WORKER_STATE_BUSY);  // The caller settles it.
  EXPECT_EQ(again->last_seen, clock_.Now());

  const dino::v1::RegisterRequest request = Request("cpu", a->info.id());
  absl::StatusOr<Worker*> stolen =
      registry_->Register(request, dino::v1::DEVICE_KIND_CPU, "mallory");
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(registry_->CheckCredential(a->info.id(), "mallory").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(registry_->CheckCredential(a->info.id(), "alice").ok());
  EXPECT_TRUE(registry_->CheckCredential("w-99", "mallory").ok());  // Unknown: not its to refuse.
}

TEST_F(WorkerRegistryTest, ThePreviousIdOfADeadWorkerGetsANewOne) {
  Worker* a = Add();
  const std::string old_id = a->info.id();
  registry_->SetDead(*a, "test");
  Worker* b = Add("cpu", "anonymous", old_id);
  EXPECT_NE(b->info.id(), old_id);
}

TEST_F(WorkerRegistryTest, FindLiveRefusesUnknownAndDeadWorkers) {
  Worker* a = Add();
  EXPECT_EQ(*registry_->FindLive(a->info.id()), a);
  EXPECT_EQ(registry_->FindLive("w-42").status().code(), absl::StatusCode::kNotFound);
  registry_->SetDead(*a, "test");
  EXPECT_EQ(registry_->FindLive(a->info.id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->Find(a->info.id()), a);  // Still known until forgotten.
}

TEST_F(WorkerRegistryTest, ANewerStreamReplacesAndClosesTheOlder) {
  Worker* a = Add();
  auto first = std::make_shared<RecordingChannel>();
  auto second = std::make_shared<RecordingChannel>();
  registry_->Attach(*a, first);
  registry_->Attach(*a, second);
  EXPECT_TRUE(first->closed());
  EXPECT_FALSE(second->closed());
  // Only the current stream detaches the worker.
  EXPECT_EQ(registry_->Detach(a->info.id(), first.get()), nullptr);
  EXPECT_EQ(a->channel, second);
  EXPECT_EQ(registry_->Detach(a->info.id(), second.get()), a);
  EXPECT_EQ(a->channel, nullptr);
}

TEST_F(WorkerRegistryTest, SendReachesTheAttachedStreamOnly) {
  Worker* a = Add();
  auto channel = std::make_shared<RecordingChannel>();
  dino::v1::CoordinatorMessage message;
  message.mutable_abort()->set_job_id("job-1");
  registry_->Send(a->info.id(), message);  // No stream yet: dropped.
  registry_->Attach(*a, channel);
  registry_->Send(a->info.id(), message);
  registry_->Send("w-42", message);  // Unknown: dropped.
  EXPECT_EQ(channel->Take().size(), 1u);
  registry_->CloseAll(absl::UnavailableError("shutting down"));
  EXPECT_TRUE(channel->closed());
  EXPECT_EQ(a->channel, nullptr);
}

TEST_F(WorkerRegistryTest, SilenceAndRetentionFollowTheClock) {
  Worker* a = Add();
  clock_.Advance(absl::Seconds(10));
  Worker* b = Add();
  clock_.Advance(absl::Seconds(10));
  std::vector<Worker*> silent = registry_->Silent(absl::Seconds(15));
  ASSERT_EQ(silent.size(), 1u);
  EXPECT_EQ(silent[0], a);
  registry_->Touch(*a);
  EXPECT_TRUE(registry_->Silent(absl::Seconds(15)).empty());

  registry_->SetDead(*b, "test");
  EXPECT_TRUE(registry_->Silent(absl::Seconds(1)).empty());  // The dead are not silent.
  registry_->ForgetDead(absl::Minutes(1));
  EXPECT_NE(registry_->Find("w-2"), nullptr);
  clock_.Advance(absl::Minutes(2));
  registry_->ForgetDead(absl::Minutes(1));
  EXPECT_EQ(registry_->Find("w-2"), nullptr);
  EXPECT_NE(registry_->Find("w-1"), nullptr);  // Silent but not dead: the caller decides.
}

TEST_F(WorkerRegistryTest, SetDeadClearsTheAttemptClosesTheStreamAndSaves) {
  Worker* a = Add();
  auto channel = std::make_shared<RecordingChannel>();
  registry_->Attach(*a, channel);
  a->info.set_state(dino::v1::WORKER_STATE_BUSY);
  a->info.set_job_id("job-1");
  a->info.set_attempt(1);
  registry_->SetDead(*a, "test");
  EXPECT_TRUE(channel->closed());
  EXPECT_EQ(a->channel, nullptr);
  EXPECT_TRUE(a->info.job_id().empty());
  const std::vector<dino::v1::WorkerInfo> stored = Stored();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].state(), dino::v1::WORKER_STATE_DEAD);
  registry_->SetIdle(*a);  // The dead stay dead.
  EXPECT_EQ(a->info.state(), dino::v1::WORKER_STATE_DEAD);
}

TEST_F(WorkerRegistryTest, RestoreTakesTheLiveRecordsSeenNow) {
  Worker* a = Add();
  Worker* b = Add();
  a->info.set_state(dino::v1::WORKER_STATE_BUSY);
  a->info.set_job_id("job-1");
  registry_->Save(*a);
  registry_->SetDead(*b, "test");
  clock_.Advance(absl::Hours(1));
  WorkerRegistry restored(store_.get(), &clock_);
  restored.Restore(Stored());
  EXPECT_EQ(restored.Find("w-2"), nullptr);
  Worker* a2 = restored.Find("w-1");
  ASSERT_NE(a2, nullptr);
  EXPECT_EQ(a2->last_seen, clock_.Now());
  EXPECT_EQ(a2->seq, a->seq);
  EXPECT_EQ(restored.InState(dino::v1::WORKER_STATE_BUSY).size(), 1u);
}

TEST_F(WorkerRegistryTest, ARecordTheStoreCannotSaveStaysInMemory) {
  Worker* a = Add();
  a->info.set_state(dino::v1::WORKER_STATE_BUSY);
  a->info.set_job_id("job-1");
  faulty_->FailSaveWorker(1);
  registry_->SetIdle(*a);
  EXPECT_EQ(a->info.state(), dino::v1::WORKER_STATE_IDLE);
  EXPECT_EQ(Stored()[0].state(), dino::v1::WORKER_STATE_IDLE);  // Saved when first added.
  dino::v1::WorkerInfo replaced = a->info;
  replaced.set_name("renamed");
  registry_->Replace(replaced);
  EXPECT_EQ(a->info.name(), "renamed");
}

TEST_F(WorkerRegistryTest, ViewsCountTheLiveFleetAndTheSchedulableWorkers) {
  Worker* a = Add("cpu");
  clock_.Advance(absl::Seconds(1));
  Worker* b = Add("cpu");
  Worker* c = Add("cuda:0");
  Worker* d = Add("cpu");
  for (Worker* w : {a, b, c, d}) registry_->Attach(*w, std::make_shared<RecordingChannel>());
  b->leaving = true;
  registry_->SetDead(*d, "test");

  WorkerRegistry::Fleet cpu = registry_->FleetOf(dino::v1::DEVICE_KIND_CPU);
  EXPECT_EQ(cpu.registered, 2);
  EXPECT_EQ(cpu.oldest_registration, FromTimestampProto(a->info.register_time()));
  RegisteredWorkers live = registry_->LiveByDevice();
  EXPECT_EQ(live[dino::v1::DEVICE_KIND_CPU], 2);
  EXPECT_EQ(live[dino::v1::DEVICE_KIND_CUDA], 1);

  std::vector<IdleWorker> schedulable = registry_->Schedulable();
  ASSERT_EQ(schedulable.size(), 2u);  // Not the leaving one, nor the dead one.
  EXPECT_EQ(schedulable[0].worker_id, a->info.id());
  EXPECT_EQ(schedulable[1].worker_id, c->info.id());
  EXPECT_EQ(schedulable[1].device, dino::v1::DEVICE_KIND_CUDA);

  std::map<dino::v1::WorkerState, int> counts = registry_->CountByState();
  EXPECT_EQ(counts[dino::v1::WORKER_STATE_IDLE], 3);
  EXPECT_EQ(counts[dino::v1::WORKER_STATE_DEAD], 1);

  EXPECT_EQ(registry_->List(false).size(), 3u);
  std::vector<dino::v1::WorkerInfo> all = registry_->List(true);
  ASSERT_EQ(all.size(), 4u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].id(), absl::StrCat("w-", i + 1));
  EXPECT_TRUE(all[0].has_last_heartbeat());
}

}  // namespace
}  // namespace dino::server
