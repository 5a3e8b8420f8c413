// dino-test-net-shaper: delays and drops the packets of one netfilter queue, for the network
// fault tests. This kernel has no `tc netem`, so the test network sends a host's outgoing packets
// to a queue (iptables -j NFQUEUE) and this program, running in that host's namespace, accepts
// each one `--delay-ms` after it arrived and drops `--loss-percent` of them, chosen by a seeded
// generator so that a run is repeatable.
//
//   dino-test-net-shaper --queue N --delay-ms D --loss-percent P [--seed S]
//
// The delay is the same for every packet, so packets leave in the order they came. It runs until
// SIGTERM or SIGINT and then prints how many packets it passed and dropped. Exit 1 when the queue
// cannot be bound (another program holds it, or no CAP_NET_ADMIN).
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <string>

namespace {

using SteadyClock = std::chrono::steady_clock;

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

struct Shaper {
  nfq_q_handle* queue = nullptr;
  std::chrono::microseconds delay{0};
  double loss = 0;  // Probability in [0, 1].
  std::mt19937_64 rng;
  std::uniform_real_distribution<double> uniform{0.0, 1.0};
  struct Held {
    uint32_t id;
    SteadyClock::time_point due;
  };
  std::deque<Held> held;
  uint64_t passed = 0;
  uint64_t dropped = 0;

  void Release(SteadyClock::time_point now) {
    while (!held.empty() && held.front().due <= now) {
      nfq_set_verdict(queue, held.front().id, NF_ACCEPT, 0, nullptr);
      held.pop_front();
      ++passed;
    }
  }
};

int OnPacket(nfq_q_handle* queue, nfgenmsg*, nfq_data* data, void* arg) {
  auto* shaper = static_cast<Shaper*>(arg);
  const nfqnl_msg_packet_hdr* header = nfq_get_msg_packet_hdr(data);
  if (header == nullptr) return 0;
  const uint32_t id = ntohl(header->packet_id);
  if (shaper->loss > 0 && shaper->uniform(shaper->rng) < shaper->loss) {
    ++shaper->dropped;
    return nfq_set_verdict(queue, id, NF_DROP, 0, nullptr);
  }
  shaper->held.push_back({id, SteadyClock::now() + shaper->delay});
  return 0;
}

bool ParseFlag(int argc, char** argv, int* i, const char* name, double* value) {
  if (std::strcmp(argv[*i], name) != 0 || *i + 1 >= argc) return false;
  char* end = nullptr;
  *value = std::strtod(argv[*i + 1], &end);
  if (end == argv[*i + 1] || *end != '\0') {
    std::fprintf(stderr, "dino-test-net-shaper: %s needs a number, got '%s'\n", name,
                 argv[*i + 1]);
    std::exit(2);
  }
  ++*i;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  double queue_num = -1, delay_ms = 0, loss_percent = 0, seed = 1;
  for (int i = 1; i < argc; ++i) {
    if (ParseFlag(argc, argv, &i, "--queue", &queue_num) ||
        ParseFlag(argc, argv, &i, "--delay-ms", &delay_ms) ||
        ParseFlag(argc, argv, &i, "--loss-percent", &loss_percent) ||
        ParseFlag(argc, argv, &i, "--seed", &seed)) {
      continue;
    }
    std::fprintf(stderr,
                 "usage: dino-test-net-shaper --queue N --delay-ms D --loss-percent P [--seed S]\n");
    return 2;
  }
  if (queue_num < 0 || queue_num > 65535 || delay_ms < 0 || loss_percent < 0 ||
      loss_percent > 100) {
    std::fprintf(stderr,
                 "dino-test-net-shaper: --queue must be in [0, 65535], --delay-ms >= 0 and "
                 "--loss-percent in [0, 100]\n");
    return 2;
  }
  Shaper shaper;
  shaper.delay = std::chrono::microseconds(static_cast<int64_t>(delay_ms * 1000));
  shaper.loss = loss_percent / 100.0;
  shaper.rng.seed(static_cast<uint64_t>(seed));

  nfq_handle* handle = nfq_open();
  if (handle == nullptr) {
    std::fprintf(stderr, "dino-test-net-shaper: nfq_open: %s\n", std::strerror(errno));
    return 1;
  }
  shaper.queue = nfq_create_queue(handle, static_cast<uint16_t>(queue_num), &OnPacket, &shaper);
  if (shaper.queue == nullptr) {
    std::fprintf(stderr, "dino-test-net-shaper: cannot bind queue %d: %s\n",
                 static_cast<int>(queue_num), std::strerror(errno));
    nfq_close(handle);
    return 1;
  }
  // Only the packet id is needed: no payload is copied to user space.
  nfq_set_mode(shaper.queue, NFQNL_COPY_META, 0);
  nfq_set_queue_maxlen(shaper.queue, 1 << 16);
  nfnl_rcvbufsiz(nfq_nfnlh(handle), 8 << 20);
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  std::printf("dino-test-net-shaper: queue %d, delay %.1f ms, loss %.2f%%\n",
              static_cast<int>(queue_num), delay_ms, loss_percent);
  std::fflush(stdout);

  const int fd = nfq_fd(handle);
  alignas(8) char buffer[1 << 16];
  while (!g_stop) {
    int timeout_ms = 100;
    if (!shaper.held.empty()) {
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
          shaper.held.front().due - SteadyClock::now());
      timeout_ms = static_cast<int>(std::max<int64_t>(0, wait.count()));
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) > 0 && (p.revents & POLLIN) != 0) {
      const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n > 0) nfq_handle_packet(handle, buffer, static_cast<int>(n));
      // ENOBUFS: the kernel dropped queued packets' messages (they are retransmitted).
    }
    shaper.Release(SteadyClock::now());
  }
  shaper.Release(SteadyClock::time_point::max());
  std::printf("dino-test-net-shaper: passed %llu, dropped %llu\n",
              static_cast<unsigned long long>(shaper.passed),
              static_cast<unsigned long long>(shaper.dropped));
  nfq_destroy_queue(shaper.queue);
  nfq_close(handle);
  return 0;
}
