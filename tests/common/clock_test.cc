#include "common/clock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace dino {
namespace {

TEST(SimulatedClockTest, StartsAtGivenTimeAndMovesOnlyWhenAdvanced) {
  SimulatedClock clock(absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(100));
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(105));
  clock.Advance(absl::Seconds(-3));  // negative advances are ignored
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(105));
  clock.SetTime(absl::FromUnixSeconds(90));  // time never goes backwards
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(105));
}

TEST(SimulatedClockTest, SleeperWakesExactlyWhenDeadlineIsReached) {
  SimulatedClock clock(absl::FromUnixSeconds(0));
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    clock.SleepFor(absl::Seconds(10));
    woke = true;
  });
  while (clock.sleepers() == 0) std::this_thread::yield();
  clock.Advance(absl::Seconds(9));
  // Still parked: the deadline is 1 s away in simulated time.
  EXPECT_EQ(clock.sleepers(), 1);
  EXPECT_FALSE(woke.load());
  clock.Advance(absl::Seconds(1));
  sleeper.join();
  EXPECT_TRUE(woke.load());
  EXPECT_EQ(clock.sleepers(), 0);
}

TEST(SimulatedClockTest, SleepUntilPastDeadlineReturnsImmediately) {
  SimulatedClock clock(absl::FromUnixSeconds(50));
  clock.SleepUntil(absl::FromUnixSeconds(10));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(50));
}

TEST(RealClockTest, NowIsCloseToWallClockAndSleepWaits) {
  RealClock* clock = RealClock::Get();
  EXPECT_LT(absl::AbsDuration(clock->Now() - absl::Now()), absl::Seconds(1));
  const absl::Time start = absl::Now();
  clock->SleepFor(absl::Milliseconds(20));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
}

}  // namespace
}  // namespace dino
