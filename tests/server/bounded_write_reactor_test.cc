// BoundedWriteReactor over a fake stream base that records writes and the Finish, driven by hand:
// the test plays gRPC by calling OnWriteDone and OnDone.
#include "server/bounded_write_reactor.h"

#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dino::server {
namespace {

// What BoundedWriteReactor needs of grpc::ServerWriteReactor / ServerBidiReactor.
class FakeStream {
 public:
  virtual ~FakeStream() = default;
  virtual void OnWriteDone(bool /*ok*/) {}
  virtual void OnDone() {}

  void StartWrite(const std::string* message) { writes.push_back(*message); }
  void Finish(const grpc::Status& status) {
    ++finish_calls;
    finished = status;
  }

  std::vector<std::string> writes;
  int finish_calls = 0;
  std::optional<grpc::Status> finished;
};

class TestReactor final : public BoundedWriteReactor<FakeStream, std::string> {
 public:
  TestReactor(Options options, bool* done) : BoundedWriteReactor(std::move(options)), done_(done) {}

  std::vector<absl::Status> finishing;

 private:
  void OnFinishing(const absl::Status& status) override { finishing.push_back(status); }
  void OnStreamDone() override { *done_ = true; }

  bool* const done_;
};

class BoundedWriteReactorTest : public ::testing::Test {
 protected:
  TestReactor* Make(size_t max_queued = 0, bool started = true) {
    TestReactor::Options options;
    options.max_queued = max_queued;
    options.overflow = absl::UnavailableError("fell behind");
    options.write_failed_message = "went away";
    options.started = started;
    reactor_ = new TestReactor(std::move(options), &done_);
    return reactor_;
  }

  void TearDown() override {
    if (reactor_ != nullptr) reactor_->OnDone();  // Deletes it.
    EXPECT_TRUE(done_);
  }

  TestReactor* reactor_ = nullptr;
  bool done_ = false;
};

TEST_F(BoundedWriteReactorTest, WritesOneMessageAtATimeInOrder) {
  TestReactor* r = Make();
  r->Enqueue("a");
  r->Enqueue("b");
  r->Enqueue("c");
  EXPECT_EQ(r->writes, std::vector<std::string>({"a"}));
  r->OnWriteDone(true);
  EXPECT_EQ(r->writes, std::vector<std::string>({"a", "b"}));
  r->OnWriteDone(true);
  r->OnWriteDone(true);
  EXPECT_EQ(r->writes, std::vector<std::string>({"a", "b", "c"}));
  EXPECT_EQ(r->finish_calls, 0);
}

TEST_F(BoundedWriteReactorTest, EndAfterQueuedFinishesOnceTheQueueIsWritten) {
  TestReactor* r = Make();
  r->Enqueue("a");
  r->Enqueue("b");
  r->EndAfterQueued(absl::NotFoundError("first"));
  r->EndAfterQueued(absl::InternalError("second"));  // Only the first end counts.
  r->Enqueue("c");                                   // Ending: ignored.
  EXPECT_EQ(r->finish_calls, 0);
  r->OnWriteDone(true);
  EXPECT_EQ(r->finish_calls, 0);
  r->OnWriteDone(true);
  EXPECT_EQ(r->writes, std::vector<std::string>({"a", "b"}));
  ASSERT_EQ(r->finish_calls, 1);
  EXPECT_EQ(r->finished->error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(r->finished->error_message(), "first");
  ASSERT_EQ(r->finishing.size(), 1u);
  EXPECT_EQ(r->finishing[0], absl::NotFoundError("first"));
}

TEST_F(BoundedWriteReactorTest, AMessageBeyondTheBoundEndsTheStreamAfterTheQueued) {
  TestReactor* r = Make(/*max_queued=*/2);
  r->Enqueue("a");  // Written at once: the queue is empty again.
  r->Enqueue("b");
  r->Enqueue("c");
  r->Enqueue("d");  // Two wait: the stream ends after them.
  r->Enqueue("e");  // Ending: ignored.
  r->OnWriteDone(true);
  r->OnWriteDone(true);
  r->OnWriteDone(true);
  EXPECT_EQ(r->writes, std::vector<std::string>({"a", "b", "c"}));
  ASSERT_EQ(r->finish_calls, 1);
  EXPECT_EQ(r->finished->error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(r->finished->error_message(), "fell behind");
}

TEST_F(BoundedWriteReactorTest, WithoutABoundEveryMessageIsQueued) {
  TestReactor* r = Make(/*max_queued=*/0);
  for (int i = 0; i < 100; ++i) r->Enqueue(std::to_string(i));
  for (int i = 0; i < 100; ++i) r->OnWriteDone(true);
  EXPECT_EQ(r->writes.size(), 100u);
  EXPECT_EQ(r->finish_calls, 0);
}

TEST_F(BoundedWriteReactorTest, EndNowDropsTheQueueWithoutWaitingForTheWriteInFlight) {
  TestReactor* r = Make();
  r->Enqueue("a");
  r->Enqueue("b");
  r->EndAfterQueued(absl::OkStatus());
  r->EndNow(absl::CancelledError());
  ASSERT_EQ(r->finish_calls, 1);
  EXPECT_EQ(r->finished->error_code(), grpc::StatusCode::CANCELLED);
  r->EndNow(absl::InternalError("later"));  // The first EndNow stands.
  r->OnWriteDone(false);
  EXPECT_EQ(r->writes, std::vector<std::string>({"a"}));
  EXPECT_EQ(r->finish_calls, 1);
}

TEST_F(BoundedWriteReactorTest, AFailedWriteEndsTheStreamCancelled) {
  TestReactor* r = Make();
  r->Enqueue("a");
  r->Enqueue("b");
  r->EndAfterQueued(absl::OkStatus());
  r->OnWriteDone(false);
  EXPECT_EQ(r->writes, std::vector<std::string>({"a"}));
  ASSERT_EQ(r->finish_calls, 1);
  EXPECT_EQ(r->finished->error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(r->finished->error_message(), "went away");
}

TEST_F(BoundedWriteReactorTest, AHeldReactorWritesAndFinishesOnlyAfterStart) {
  TestReactor* r = Make(/*max_queued=*/0, /*started=*/false);
  r->Enqueue("a");
  r->EndNow(absl::CancelledError());  // As a cancel before the constructor is done.
  r->EndNow(absl::NotFoundError("no such job"));
  EXPECT_TRUE(r->writes.empty());
  EXPECT_EQ(r->finish_calls, 0);
  r->Start();
  EXPECT_TRUE(r->writes.empty());
  ASSERT_EQ(r->finish_calls, 1);
  EXPECT_EQ(r->finished->error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(BoundedWriteReactorTest, AHeldReactorSendsWhatWasQueuedBeforeStart) {
  TestReactor* r = Make(/*max_queued=*/0, /*started=*/false);
  r->Enqueue("a");
  r->Enqueue("b");
  r->EndAfterQueued(absl::OkStatus());
  r->Start();
  r->OnWriteDone(true);
  r->OnWriteDone(true);
  EXPECT_EQ(r->writes, std::vector<std::string>({"a", "b"}));
  ASSERT_EQ(r->finish_calls, 1);
  EXPECT_TRUE(r->finished->ok());
}

}  // namespace
}  // namespace dino::server
