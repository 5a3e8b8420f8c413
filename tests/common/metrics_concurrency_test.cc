#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"

namespace dino {
namespace metrics {
namespace {

constexpr int kThreads = 8;
constexpr int kPerThread = 20000;

TEST(MetricsConcurrencyTest, ConcurrentUpdatesSumExactly) {
  Registry registry;
  Family<Counter>* images = *registry.AddCounter("dino_train_images_total", "h", {"job", "rank"});
  Family<Gauge>* queue = *registry.AddGauge("dino_queue_length", "h");
  Family<Histogram>* steps =
      *registry.AddHistogram("dino_train_step_seconds", "h", {"job", "rank"}, {0.5, 1.5});

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string rank = std::to_string(t % 2);
      for (int i = 0; i < kPerThread; ++i) {
        // Looked up every time on purpose: child creation races with other threads' lookups.
        images->WithLabels({"j", rank})->Increment(2);
        queue->Get()->Increment();
        queue->Get()->Decrement(0.5);
        steps->WithLabels({"j", rank})->Observe(i % 3);  // 0, 1, 2
        if (i % 1000 == 0) registry.Render();            // scrapes race with updates
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  double total_images = 0;
  uint64_t total_steps = 0;
  double total_sum = 0;
  std::vector<uint64_t> buckets(3, 0);
  for (const char* rank : {"0", "1"}) {
    total_images += images->WithLabels({"j", rank})->Value();
    Histogram::Snapshot snapshot = steps->WithLabels({"j", rank})->Collect();
    total_steps += snapshot.count;
    total_sum += snapshot.sum;
    for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += snapshot.cumulative_counts[i];
  }
  const int n = kThreads * kPerThread;
  EXPECT_EQ(total_images, 2.0 * n);
  EXPECT_EQ(queue->Get()->Value(), 0.5 * n);
  EXPECT_EQ(total_steps, static_cast<uint64_t>(n));
  // kPerThread values cycle 0,1,2: count of each per thread is known exactly.
  const int zeros = (kPerThread + 2) / 3, ones = (kPerThread + 1) / 3;
  EXPECT_EQ(buckets[0], static_cast<uint64_t>(kThreads * zeros));
  EXPECT_EQ(buckets[1], static_cast<uint64_t>(kThreads * (zeros + ones)));
  EXPECT_EQ(buckets[2], static_cast<uint64_t>(n));
  EXPECT_EQ(total_sum, static_cast<double>(kThreads) * (ones + 2 * (kPerThread / 3)));
  EXPECT_EQ(images->ChildCount(), 2u);
}

TEST(MetricsConcurrencyTest, RegistrationAndRemovalRaceWithScrapes) {
  Registry registry;
  Family<Gauge>* loss = *registry.AddGauge("dino_train_loss", "h", {"job"});
  std::thread scraper([&] {
    for (int i = 0; i < 200; ++i) registry.Render();
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        const std::string job = "job" + std::to_string(t) + "_" + std::to_string(i % 10);
        std::shared_ptr<Gauge> child = loss->WithLabels({job});
        loss->RemoveMatching("job", job);
        child->Set(i);  // after removal: must not touch freed memory
      }
      ASSERT_TRUE(registry.AddGauge("dino_extra_" + std::to_string(t), "h").ok());
    });
  }
  for (std::thread& writer : writers) writer.join();
  scraper.join();
  EXPECT_EQ(loss->ChildCount(), 0u);
  const std::string text = registry.Render();
  for (int t = 0; t < 4; ++t) {
    EXPECT_NE(text.find("dino_extra_" + std::to_string(t) + " 0\n"), std::string::npos);
  }
}

}  // namespace
}  // namespace metrics
}  // namespace dino
