// CachingCpuAllocator: large blocks are reused after their tensor is freed, small ones go to the
// fallback, the cache respects its cap and Release(), threads can share it, and the installed
// allocator serves torch's own CPU tensors.
#include "worker/dino/cpu_allocator.h"

#include <c10/core/CPUAllocator.h>
#include <torch/torch.h>

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace dino {
namespace {

constexpr size_t kAllocMiB = size_t{1} << 20;

class CachingCpuAllocatorTest : public ::testing::Test {
 protected:
  c10::Allocator* fallback_ = c10::GetDefaultCPUAllocator();
};

TEST_F(CachingCpuAllocatorTest, FreedLargeBlockIsReusedForTheSameOrASlightlySmallerSize) {
  CachingCpuAllocator allocator(fallback_, 64 * kAllocMiB);
  void* first = nullptr;
  {
    c10::DataPtr block = allocator.allocate(4 * kAllocMiB);
    ASSERT_NE(block.get(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(block.get()) % 64, 0u);
    first = block.get();
    static_cast<char*>(block.get())[4 * kAllocMiB - 1] = 1;  // The whole block is usable.
  }
  EXPECT_EQ(allocator.stats().cached_bytes, 4 * kAllocMiB);
  EXPECT_EQ(allocator.stats().misses, 1);
  {
    c10::DataPtr again =
        allocator.allocate(4 * kAllocMiB - 1000);  // Within 1/8 of the cached size.
    EXPECT_EQ(again.get(), first);
    EXPECT_EQ(allocator.stats().hits, 1);
    EXPECT_EQ(allocator.stats().cached_bytes, 0u);
    // A request for much less must not take a block it would waste most of.
    c10::DataPtr other = allocator.allocate(2 * kAllocMiB);
    EXPECT_NE(other.get(), first);
    EXPECT_EQ(allocator.stats().misses, 2);
  }
  EXPECT_EQ(allocator.stats().cached_bytes, 6 * kAllocMiB);
  {
    c10::DataPtr bigger = allocator.allocate(5 * kAllocMiB);  // More than any cached block.
    EXPECT_EQ(allocator.stats().misses, 3);
    EXPECT_EQ(allocator.stats().cached_bytes, 6 * kAllocMiB);
  }
}

TEST_F(CachingCpuAllocatorTest, SmallRequestsGoToTheFallback) {
  CachingCpuAllocator allocator(fallback_, 64 * kAllocMiB);
  { c10::DataPtr small = allocator.allocate(CachingCpuAllocator::kMinCachedBytes - 1); }
  { c10::DataPtr empty = allocator.allocate(0); }
  EXPECT_EQ(allocator.stats().hits, 0);
  EXPECT_EQ(allocator.stats().misses, 0);
  EXPECT_EQ(allocator.stats().cached_bytes, 0u);
}

// oneDNN allocates through raw_allocate and frees through raw_deallocate, which must also accept
// small blocks (from the fallback) and blocks another allocator made before this one.
TEST_F(CachingCpuAllocatorTest, RawInterfaceTakesOwnSmallAndForeignBlocks) {
  CachingCpuAllocator allocator(fallback_, 64 * kAllocMiB);
  ASSERT_NE(allocator.raw_deleter(), nullptr);
  void* big = allocator.raw_allocate(2 * kAllocMiB);
  allocator.raw_deallocate(big);
  EXPECT_EQ(allocator.stats().cached_bytes, 2 * kAllocMiB);
  void* small = allocator.raw_allocate(1000);
  static_cast<char*>(small)[999] = 1;
  allocator.raw_deallocate(small);
  void* foreign = fallback_->raw_allocate(3 * kAllocMiB);
  allocator.raw_deallocate(foreign);
  EXPECT_EQ(allocator.stats().cached_bytes, 2 * kAllocMiB);  // Neither was cached.
  void* again = allocator.raw_allocate(2 * kAllocMiB);
  EXPECT_EQ(again, big);
  allocator.raw_deallocate(again);
}

TEST_F(CachingCpuAllocatorTest, CacheKeepsAtMostItsCapAndReleaseEmptiesIt) {
  CachingCpuAllocator allocator(fallback_, 5 * kAllocMiB);
  {
    c10::DataPtr a = allocator.allocate(3 * kAllocMiB);
    c10::DataPtr b = allocator.allocate(3 * kAllocMiB);
  }
  // Only one of the two 3 MiB blocks fits under the 5 MiB cap; the other went back to the system.
  EXPECT_EQ(allocator.stats().cached_bytes, 3 * kAllocMiB);
  allocator.Release();
  EXPECT_EQ(allocator.stats().cached_bytes, 0u);
  { c10::DataPtr c = allocator.allocate(3 * kAllocMiB); }
  EXPECT_EQ(allocator.stats().hits, 0);
}

TEST_F(CachingCpuAllocatorTest, ImpossibleRequestThrowsOutOfMemory) {
  CachingCpuAllocator allocator(fallback_, 64 * kAllocMiB);
  { c10::DataPtr cached = allocator.allocate(2 * kAllocMiB); }
  EXPECT_THROW(allocator.allocate(size_t{1} << 62), c10::OutOfMemoryError);
  EXPECT_EQ(allocator.stats().cached_bytes, 0u);  // It emptied the cache before giving up.
}

TEST_F(CachingCpuAllocatorTest, ThreadsShareTheCacheAndKeepTheirDataApart) {
  CachingCpuAllocator allocator(fallback_, 256 * kAllocMiB);
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const size_t n = (1 + (i + t) % 3) * kAllocMiB;
        c10::DataPtr block = allocator.allocate(n);
        auto* bytes = static_cast<unsigned char*>(block.get());
        for (size_t j = 0; j < n; j += 4096) bytes[j] = static_cast<unsigned char>(t * 50 + i);
        for (size_t j = 0; j < n; j += 4096) {
          if (bytes[j] != static_cast<unsigned char>(t * 50 + i)) ++wrong[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t;
  const auto stats = allocator.stats();
  EXPECT_EQ(stats.hits + stats.misses, 200);
  EXPECT_GT(stats.hits, 150);  // At most 4 threads x 3 sizes are ever live at once.
}

TEST_F(CachingCpuAllocatorTest, InstalledAllocatorServesTorchCpuTensors) {
  CachingCpuAllocator* installed = InstallCachingCpuAllocator();
  ASSERT_NE(installed, nullptr);
  EXPECT_EQ(InstallCachingCpuAllocator(), installed);
  EXPECT_EQ(InstalledCachingCpuAllocator(), installed);
  EXPECT_EQ(c10::GetCPUAllocator(), installed);
  installed->Release();
  const int64_t hits = installed->stats().hits;
  void* first = nullptr;
  {
    torch::Tensor t = torch::ones({1024, 1024});  // 4 MiB
    first = t.data_ptr();
  }
  torch::Tensor u = torch::zeros({1024, 1024});
  EXPECT_EQ(u.data_ptr(), first);
  EXPECT_EQ(installed->stats().hits, hits + 1);
  EXPECT_EQ(u.sum().item<float>(), 0.0f);
  torch::Tensor v = torch::randn({1024, 1024}).matmul(torch::eye(1024));
  EXPECT_EQ(v.size(0), 1024);
}

}  // namespace
}  // namespace dino
