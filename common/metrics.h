// Prometheus metrics for the coordinator and the workers: counters, gauges and histograms with
// label sets, kept in a Registry that renders the text exposition format 0.0.4.
//
// Why hand-written: prometheus-cpp is not packaged for Debian 12, and the part we need (three
// metric types, labels, text rendering) is small. This module stays that small; serving over HTTP
// lives in metrics_http.h so that only the binaries link civetweb.
//
// Ownership: a Registry owns its families; a Family owns its children through shared_ptr. A child
// handed out by Family::WithLabels stays usable after Family::Remove (it is then no longer
// exported), so a late update from another thread never touches freed memory. Family pointers
// returned by the Registry are valid for the Registry's lifetime.
//
// Thread-safety: everything is safe from any thread. Counter and Gauge updates are lock-free
// (a CAS loop on std::atomic<double>); a Histogram observation takes the child's own mutex so that
// its buckets, sum and count are always rendered consistently. Registration and child lookup take
// a mutex; callers on hot paths keep the child pointer instead of looking it up per update.
//
// Failure: a bad metric or label name, a duplicate name or bad histogram buckets are programming
// errors reported as a non-OK Status from registration (nothing throws). A label-value list of the
// wrong length gives a detached child that is never exported, and the mistake is logged once per
// family.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace dino {
namespace metrics {

// Label values of one child, in the order of its family's label names.
using LabelValues = std::vector<std::string>;

enum class MetricType { kCounter, kGauge, kHistogram };

// A monotonically increasing value. Negative or NaN increments are ignored.
class Counter {
 public:
  void Increment(double amount = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Increment(double amount = 1.0);
  void Decrement(double amount = 1.0) { Increment(-amount); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted into fixed buckets. Bounds are the finite upper bounds (strictly
// increasing); the +Inf bucket is implicit.
class Histogram {
 public:
  struct Snapshot {
    std::vector<double> upper_bounds;         // finite bounds, as registered
    std::vector<uint64_t> cumulative_counts;  // one per bound, then one for +Inf (== count)
    double sum = 0.0;
    uint64_t count = 0;
  };

  explicit Histogram(std::vector<double> upper_bounds);
  // NaN observations are ignored.
  void Observe(double value);
  Snapshot Collect() const;

 private:
  const std::vector<double> upper_bounds_;
  mutable absl::Mutex mu_;
  std::vector<uint64_t> bucket_counts_ ABSL_GUARDED_BY(mu_);  // not cumulative; last is +Inf
  double sum_ ABSL_GUARDED_BY(mu_) = 0.0;
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

// Bucket bounds `start, start*factor, ...` (count bounds); start > 0, factor > 1.
std::vector<double> ExponentialBuckets(double start, double factor, int count);
// Bucket bounds `start, start+width, ...` (count bounds); width > 0.
std::vector<double> LinearBuckets(double start, double width, int count);
// Latency buckets from 1 ms to 60 s, for request and step durations.
std::vector<double> DefaultLatencyBuckets();

// Validation, shared with the registry; exposed for tests.
bool IsValidMetricName(absl::string_view name);
bool IsValidLabelName(absl::string_view name);

// The part of a family the registry renders, independent of the child type.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names)
      : name_(std::move(name)),
        help_(std::move(help)),
        type_(type),
        label_names_(std::move(label_names)) {}
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Appends HELP, TYPE and every child's samples to `out`.
  virtual void Render(std::string* out) const = 0;

  // Stops exporting every child whose label `label_name` equals `value`, e.g. all series of a job
  // that ended. Returns how many were removed; 0 when the family has no such label.
  virtual size_t RemoveMatching(absl::string_view label_name, absl::string_view value) = 0;

 protected:
  // Logs a wrong-length label list, once per family.
  void ReportLabelMismatch(size_t got) const;

 private:
  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
  mutable std::atomic<bool> reported_mismatch_{false};
};

// Samples of one child appended in exposition format (implemented in metrics_exposition.cc).
void RenderChild(const FamilyBase& family, const LabelValues& values, const Counter& child,
                 std::string* out);
void RenderChild(const FamilyBase& family, const LabelValues& values, const Gauge& child,
                 std::string* out);
void RenderChild(const FamilyBase& family, const LabelValues& values, const Histogram& child,
                 std::string* out);
// HELP and TYPE lines of a family.
void RenderHeader(const FamilyBase& family, std::string* out);

// A metric family: one name, fixed label names, one child per distinct label-value list.
// A family without labels has exactly one child, created at registration, so it is exported
// (as 0) from the first scrape.
template <typename T>
class Family final : public FamilyBase {
 public:
  // `make_child` builds a new child (histograms need their bounds).
  Family(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
         std::function<std::shared_ptr<T>()> make_child)
      : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
        make_child_(std::move(make_child)) {
    if (this->label_names().empty()) WithLabels({});
  }

  // The child for `values`, created on first use.
  std::shared_ptr<T> WithLabels(const LabelValues& values) {
    if (values.size() != label_names().size()) {
      ReportLabelMismatch(values.size());
      return make_child_();
    }
    absl::MutexLock lock(&mu_);
    std::shared_ptr<T>& child = children_[values];
    if (child == nullptr) child = make_child_();
    return child;
  }

  // The only child of a family without labels.
  std::shared_ptr<T> Get() { return WithLabels({}); }

  // Stops exporting the child for `values`. Returns whether it existed.
  bool Remove(const LabelValues& values) {
    absl::MutexLock lock(&mu_);
    return children_.erase(values) > 0;
  }

  size_t RemoveMatching(absl::string_view label_name, absl::string_view value) override {
    size_t index = 0;
    while (index < label_names().size() && label_names()[index] != label_name) ++index;
    if (index == label_names().size()) return 0;
    absl::MutexLock lock(&mu_);
    size_t removed = 0;
    for (auto it = children_.begin(); it != children_.end();) {
      if (it->first[index] == value) {
        it = children_.erase(it);
        ++removed;
      } else {
        ++it;
      }
    }
    return removed;
  }

  size_t ChildCount() const {
    absl::MutexLock lock(&mu_);
    return children_.size();
  }

  void Render(std::string* out) const override {
    std::vector<std::pair<LabelValues, std::shared_ptr<T>>> children;
    {
      absl::MutexLock lock(&mu_);
      children.assign(children_.begin(), children_.end());
    }
    RenderHeader(*this, out);
    for (const auto& [values, child] : children) RenderChild(*this, values, *child, out);
  }

 private:
  const std::function<std::shared_ptr<T>()> make_child_;
  mutable absl::Mutex mu_;
  // Ordered so that the exposition is deterministic.
  std::map<LabelValues, std::shared_ptr<T>> children_ ABSL_GUARDED_BY(mu_);
};

// The set of families one process exports.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Counter names must end in `_total`, and help must not be empty (promtool's lint requires
  // both). Errors: INVALID_ARGUMENT for a bad name, help, label name or bucket list;
  // ALREADY_EXISTS for a name already registered, including the `_bucket`, `_sum` and `_count`
  // series of a histogram.
  absl::StatusOr<Family<Counter>*> AddCounter(std::string name, std::string help,
                                              std::vector<std::string> label_names = {});
  absl::StatusOr<Family<Gauge>*> AddGauge(std::string name, std::string help,
                                          std::vector<std::string> label_names = {});
  absl::StatusOr<Family<Histogram>*> AddHistogram(std::string name, std::string help,
                                                  std::vector<std::string> label_names,
                                                  std::vector<double> upper_bounds);

  // An unlabelled gauge whose value is read by `read` at every scrape (e.g. process RSS).
  // `read` runs on the scraping thread, without registry locks held.
  absl::Status AddCallbackGauge(std::string name, std::string help, std::function<double()> read);

  // Runs `hook` at the start of every Render, before any family is rendered, without registry
  // locks held; it may update any family (e.g. GPU memory gauges labelled by device).
  void AddScrapeHook(std::function<void()> hook);

  // The whole registry in text exposition format 0.0.4, families in registration order.
  std::string Render() const;

  // FamilyBase::RemoveMatching on every family: drops all series of an ended job with
  // `RemoveMatching("job", job_id)`. Returns the number of series removed.
  size_t RemoveMatching(absl::string_view label_name, absl::string_view value);

 private:
  absl::Status CheckNewFamily(const std::string& name, const std::string& help,
                              const std::vector<std::string>& labels, MetricType type) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<Gauge*, std::function<double()>>> callback_gauges_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> scrape_hooks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace metrics
}  // namespace dino
