// Hostile load: a real dino-coordinator on loopback, with --data-roots, takes 10,000
// malformed or oversized requests from several threads: invalid specs, specs over the size limit,
// fields that multiply into terabytes, data paths that escape the roots, messages over gRPC's
// size limit, ids that try to be paths, bad uploads and worker-protocol violations, and raw TCP
// connections that send garbage, a truncated HTTP/2 preface or broken frames to the gRPC port.
// Afterwards the coordinator still answers health checks, the job and checkpoints stored before
// the storm are unchanged and downloadable, no job was created by the storm, and a new valid job
// still completes. The count and the elapsed time are printed (not asserted: timing is for
// benchmarks).
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/sha256.h"
#include "dino/v1/worker.grpc.pb.h"
#include "tests/e2e/cluster.h"

namespace dino::e2e {
namespace {

using dino::v1::JobSpec;

constexpr int kRequests = 10000;
constexpr int kThreads = 8;
int PortOf(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

// One raw TCP connection to the gRPC port: send `bytes`, half-close, read until the server closes
// (or 2 s pass), close. Returns false when the connection could not even be made.
bool RawTcp(int port, const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  timeval timeout{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return false;
  }
  (void)!write(fd, bytes.data(), bytes.size());
  shutdown(fd, SHUT_WR);
  char buffer[4096];
  while (read(fd, buffer, sizeof(buffer)) > 0) {
  }
  close(fd);
  return true;
}

std::string Http2Preface() { return "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"; }

// An HTTP/2 frame header: 24-bit length, type, flags, 31-bit stream id.
std::string Frame(uint32_t length, uint8_t type, uint8_t flags, uint32_t stream,
                  const std::string& payload) {
  std::string f;
  f.push_back(static_cast<char>(length >> 16));
  f.push_back(static_cast<char>(length >> 8));
  f.push_back(static_cast<char>(length));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  f.push_back(static_cast<char>(stream >> 24));
  f.push_back(static_cast<char>(stream >> 16));
  f.push_back(static_cast<char>(stream >> 8));
  f.push_back(static_cast<char>(stream));
  return f + payload;
}

std::string RawPayload(int i) {
  std::string garbage(64 + (i * 37) % 512, '\0');
  uint32_t x = 2463534242u + static_cast<uint32_t>(i);
  for (char& c : garbage) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    c = static_cast<char>(x);
  }
  switch (i % 6) {
    case 0:
      return garbage;
    case 1:
      return Http2Preface().substr(0, 1 + i % 23);  // Truncated preface.
    case 2:  // A SETTINGS frame announcing 16 MiB that never comes.
      return Http2Preface() + Frame(0xFFFFFF, 0x4, 0, 0, "");
    case 3:  // HEADERS with garbage HPACK on stream 1.
      return Http2Preface() + Frame(0, 0x4, 0, 0, "") +
             Frame(static_cast<uint32_t>(garbage.size()), 0x1, 0x4, 1, garbage);
    case 4:  // DATA on a stream that was never opened, then garbage.
      return Http2Preface() + Frame(0, 0x4, 0, 0, "") + Frame(8, 0x0, 0, 7, "12345678") + garbage;
    default:
      return "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + garbage;
  }
}

JobSpec Invalid(int i) {
  JobSpec spec = TinySpec(1, 1);
  switch (i % 8) {
    case 0:
      spec.mutable_optim()->set_batch_size_per_rank(0);
      break;
    case 1:  // No 10^9 crops.
      spec.mutable_augmentation()->set_n_local_crops(1000000000);
      break;
    case 2:  // No terabyte batch.
      spec.mutable_optim()->set_batch_size_per_rank(int64_t{1} << 40);
      break;
    case 3:
      spec.set_name(std::string(100000, 'n'));  // Over --max-spec-bytes (64 KiB).
      break;
    case 4:
      spec.mutable_data()->set_kind(dino::v1::DATASET_KIND_IDX);
      spec.mutable_data()->set_path("/etc/passwd");
      break;
    case 5:
      spec.mutable_data()->set_kind(dino::v1::DATASET_KIND_IMAGE_FOLDER);
      spec.mutable_data()->set_path("/tmp/../../etc");
      break;
    case 6:
      for (int l = 0; l < 40; ++l) (*spec.mutable_labels())[absl::StrCat("k", l)] = "v";
      break;
    default:
      spec.mutable_model()->set_preset(std::string(4000, '\xff'));
      break;
  }
  return spec;
}

struct Tally {
  std::atomic<int> sent{0};
  std::atomic<int> accepted{0};  // Must stay 0: every request here is wrong...
  std::atomic<int> ignored{0};   // ...except late results, acknowledged and ignored (below).
  std::atomic<int> raw_refused{0};
  std::mutex mu;
  std::map<std::string, int> codes;
  // `idempotent`: a request the coordinator acknowledges without acting on it (a result for an
  // attempt that already ended: workers retry results across coordinator restarts).
  void Count(const grpc::Status& status, const std::string& what, bool idempotent = false) {
    ++sent;
    if (status.ok() && idempotent) {
      ++ignored;
    } else if (status.ok()) {
      ++accepted;
      std::fprintf(stderr, "hostile request accepted: %s\n", what.c_str());
    }
    std::lock_guard<std::mutex> lock(mu);
    ++codes[absl::StrCat(what.substr(0, 12), "=", status.error_code())];
  }
};

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(20);
}

void OneHostileRequest(int i, int port, dino::v1::JobService::Stub* jobs,
                       dino::v1::WorkerService::Stub* workers, const std::string& real_job,
                       Tally* tally) {
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  switch (i % 16) {
    case 0:
    case 1:
    case 2: {
      dino::v1::SubmitJobRequest request;
      *request.mutable_spec() = Invalid(i / 16 + i % 16);
      dino::v1::SubmitJobResponse response;
      tally->Count(jobs->SubmitJob(&context, request, &response), "invalid spec");
      return;
    }
    case 3: {
      if (i % 160 == 3) {  // Over gRPC's 16 MiB message limit; rarer, they are big.
        dino::v1::SubmitJobRequest request;
        *request.mutable_spec() = TinySpec(1, 1);
        (*request.mutable_spec()->mutable_labels())["huge"] = std::string(17 << 20, 'x');
        dino::v1::SubmitJobResponse response;
        tally->Count(jobs->SubmitJob(&context, request, &response), "oversized message");
      } else {
        dino::v1::GetJobRequest request;
        request.set_job_id(std::string(1 << 16, '/'));
        dino::v1::Job job;
        tally->Count(jobs->GetJob(&context, request, &job), "huge id");
      }
      return;
    }
    case 4:
    case 5: {
      static const char* kIds[] = {
          "../x", "../../coordinator.db", "/etc/passwd", "ckpt-1/../..", "latest\n", ""};
      dino::v1::DownloadCheckpointRequest request;
      request.set_job_id(i % 32 < 16 ? real_job : absl::StrCat("../", real_job));
      request.set_checkpoint_id(kIds[i % 6]);
      if (request.checkpoint_id().empty()) request.set_checkpoint_id("../" + real_job);
      auto reader = jobs->DownloadCheckpoint(&context, request);
      dino::v1::DownloadCheckpointResponse chunk;
      while (reader->Read(&chunk)) {
      }
      tally->Count(reader->Finish(), "download " + request.checkpoint_id());
      return;
    }
    case 6: {
      dino::v1::CancelJobRequest request;
      request.set_job_id(absl::StrCat("job-", 100000 + i));
      dino::v1::Job job;
      tally->Count(jobs->CancelJob(&context, request, &job), "cancel unknown");
      return;
    }
    case 7: {
      dino::v1::WatchJobRequest request;
      request.set_job_id(absl::StrCat("../job-", i));
      auto reader = jobs->WatchJob(&context, request);
      dino::v1::JobEvent event;
      while (reader->Read(&event)) {
      }
      tally->Count(reader->Finish(), "watch unknown");
      return;
    }
    case 8:
    case 9: {  // Uploads: unknown attempt, a path as job id, data before header, huge size.
      dino::v1::UploadCheckpointResponse response;
      auto writer = workers->UploadCheckpoint(&context, &response);
      dino::v1::UploadCheckpointRequest part;
      if (i % 3 != 0) {
        auto* header = part.mutable_header();
        header->set_worker_id("w-404");
        header->set_job_id(i % 3 == 1 ? "../../etc" : real_job);
        header->set_attempt(1);
        header->set_size_bytes(i % 2 == 0 ? int64_t{1} << 50 : 16);
        writer->Write(part);
      }
      part.set_data(std::string(16, 'd'));
      writer->Write(part);
      part.set_sha256("00");
      writer->Write(part);
      writer->WritesDone();
      tally->Count(writer->Finish(), "bad upload");
      return;
    }
    case 10: {
      dino::v1::ReportProgressRequest request;
      request.set_worker_id("w-404");
      request.set_job_id(real_job);
      request.set_attempt(99);
      request.add_stats()->set_step(-1);
      dino::v1::ReportProgressResponse response;
      tally->Count(workers->ReportProgress(&context, request, &response), "progress");
      return;
    }
    case 11: {  // A forged result: for the ended attempt 1 (ignored) or for no attempt.
      dino::v1::ReportResultRequest request;
      request.set_worker_id("../w");
      request.set_job_id(real_job);
      request.set_attempt(i % 32 < 16 ? 1 : 99);
      request.set_outcome(dino::v1::ATTEMPT_OUTCOME_FAILED);
      request.set_failure_reason(dino::v1::FAILURE_REASON_BAD_DATASET);
      dino::v1::ReportResultResponse response;
      tally->Count(workers->ReportResult(&context, request, &response), "result",
                   request.attempt() == 1);
      return;
    }
    case 12: {  // Worker protocol: heartbeat before hello, or a hello for an unknown worker.
      auto stream = workers->Connect(&context);
      dino::v1::WorkerMessage message;
      if (i % 2 == 0) {
        message.mutable_heartbeat();
      } else {
        message.mutable_hello()->set_worker_id(absl::StrCat("w-", 900000 + i));
      }
      stream->Write(message);
      stream->WritesDone();
      dino::v1::CoordinatorMessage reply;
      while (stream->Read(&reply)) {
      }
      tally->Count(stream->Finish(), "connect");
      return;
    }
    default: {  // 13..15: raw bytes on the gRPC port.
      ++tally->sent;
      if (!RawTcp(port, RawPayload(i))) ++tally->raw_refused;
      return;
    }
  }
}

grpc::Status HealthCheck(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub generic(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Slice empty;
  grpc::ByteBuffer request(&empty, 1);
  auto call = generic.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return status;
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes += std::string(s.begin(), s.end());
  return bytes == std::string("\x08\x01", 2)
             ? grpc::Status::OK
             : grpc::Status(grpc::StatusCode::UNKNOWN, "health: not SERVING");
}

std::map<std::string, std::string> ShaById(const std::vector<dino::v1::CheckpointInfo>& list) {
  std::map<std::string, std::string> out;
  for (const auto& c : list) out[c.id()] = c.sha256();
  return out;
}

TEST(HostileLoadE2E, TenThousandBadRequestsLeaveTheCoordinatorServingAndItsDataIntact) {
  Cluster cluster("hostile-load");
  const std::string data_root = cluster.dir() + "/data";
  ASSERT_EQ(std::system(("mkdir -p " + data_root).c_str()), 0);
  cluster.coordinator_flags = {"--data-roots", data_root};
  cluster.StartCoordinator();
  cluster.StartWorker(0);

  ASSERT_OK_AND_ASSIGN(before, cluster.Submit(TinySpec(1, 1)));
  ASSERT_OK_AND_ASSIGN(done, cluster.WaitTerminal(before.id(), kJobTimeout));
  ASSERT_EQ(done.state(), dino::v1::JOB_STATE_SUCCEEDED) << done.DebugString() << cluster.Logs();
  ASSERT_OK_AND_ASSIGN(checkpoints_before, cluster.Checkpoints(before.id()));
  ASSERT_FALSE(checkpoints_before.empty());
  ASSERT_OK_AND_ASSIGN(stored, cluster.GetJob(before.id()));

  const std::string address = cluster.coordinator_address();
  const int port = PortOf(address);
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(32 << 20);  // The client may send what the server must refuse.
  auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  auto jobs = dino::v1::JobService::NewStub(channel);
  auto workers = dino::v1::WorkerService::NewStub(channel);

  Tally tally;
  std::atomic<int> next{0};
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < kRequests; i = next++) {
        OneHostileRequest(i, port, jobs.get(), workers.get(), before.id(), &tally);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::string codes;
  for (const auto& [code, n] : tally.codes) absl::StrAppend(&codes, " code ", code, ": ", n, ";");
  std::printf(
      "hostile load: %d malformed or oversized requests in %.2f s (%.0f/s);%s late results "
      "ignored: %d; raw TCP refused: %d\n",
      tally.sent.load(), seconds, tally.sent.load() / seconds, codes.c_str(), tally.ignored.load(),
      tally.raw_refused.load());
  EXPECT_EQ(tally.sent.load(), kRequests);
  EXPECT_EQ(tally.accepted.load(), 0);
  EXPECT_EQ(tally.raw_refused.load(), 0);

  // Still up and serving, with everything it had.
  EXPECT_TRUE(HealthCheck(channel).ok()) << cluster.Logs();
  ASSERT_OK_AND_ASSIGN(after, cluster.GetJob(before.id()));
  EXPECT_EQ(after.DebugString(), stored.DebugString());  // Not one field changed.
  ASSERT_OK_AND_ASSIGN(checkpoints_after, cluster.Checkpoints(before.id()));
  EXPECT_EQ(ShaById(checkpoints_after), ShaById(checkpoints_before));
  for (const auto& checkpoint : checkpoints_after) {
    grpc::ClientContext context;
    dino::v1::DownloadCheckpointRequest request;
    request.set_job_id(before.id());
    request.set_checkpoint_id(checkpoint.id());
    auto reader = jobs->DownloadCheckpoint(&context, request);
    dino::v1::DownloadCheckpointResponse chunk;
    std::string bytes;
    while (reader->Read(&chunk)) bytes += chunk.data();
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(Sha256::Of(bytes), checkpoint.sha256());
  }

  // A valid job still completes, and it is the only job the storm left behind.
  ASSERT_OK_AND_ASSIGN(next_job, cluster.Submit(TinySpec(1, 1)));
  ASSERT_OK_AND_ASSIGN(next_done, cluster.WaitTerminal(next_job.id(), kJobTimeout));
  EXPECT_EQ(next_done.state(), dino::v1::JOB_STATE_SUCCEEDED) << next_done.DebugString();
  grpc::ClientContext list_context;
  dino::v1::ListJobsResponse listed;
  ASSERT_TRUE(jobs->ListJobs(&list_context, dino::v1::ListJobsRequest(), &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 2);
}

}  // namespace
}  // namespace dino::e2e
