#include "common/metrics.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dino {
namespace metrics {
namespace {

// Adds with a CAS loop: std::atomic<double>::fetch_add is C++20.
void AtomicAdd(std::atomic<double>* target, double amount) {
  double current = target->load(std::memory_order_relaxed);
  while (!target->compare_exchange_weak(current, current + amount, std::memory_order_relaxed)) {
  }
}

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

absl::Status CheckBuckets(const std::vector<double>& upper_bounds) {
  for (size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i])) {
      return absl::InvalidArgumentError(
          "histogram bucket bounds must be finite (+Inf is implicit)");
    }
    if (i > 0 && !(upper_bounds[i] > upper_bounds[i - 1])) {
      return absl::InvalidArgumentError("histogram bucket bounds must be strictly increasing");
    }
  }
  return absl::OkStatus();
}

// Whether a new family `name` of `type` would expose a series name that `existing` exposes too.
bool SeriesNamesCollide(const FamilyBase& existing, const std::string& name, MetricType type) {
  auto series = [](const std::string& family_name, MetricType family_type) {
    std::vector<std::string> names = {family_name};
    if (family_type == MetricType::kHistogram) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        names.push_back(family_name + suffix);
      }
    }
    return names;
  };
  for (const std::string& a : series(existing.name(), existing.type())) {
    for (const std::string& b : series(name, type)) {
      if (a == b) return true;
    }
  }
  return false;
}

}  // namespace

void Counter::Increment(double amount) {
  if (!(amount >= 0.0)) return;  // also drops NaN
  AtomicAdd(&value_, amount);
}

void Gauge::Increment(double amount) { AtomicAdd(&value_, amount); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), bucket_counts_(upper_bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  // Bucket i counts values in (bound[i-1], bound[i]]: the first bound >= value.
  const size_t bucket =
      std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin();
  absl::MutexLock lock(&mu_);
  ++bucket_counts_[bucket];
  sum_ += value;
  ++count_;
}

Histogram::Snapshot Histogram::Collect() const {
  Snapshot snapshot;
  snapshot.upper_bounds = upper_bounds_;
  snapshot.cumulative_counts.reserve(upper_bounds_.size() + 1);
  absl::MutexLock lock(&mu_);
  uint64_t running = 0;
  for (uint64_t n : bucket_counts_) {
    running += n;
    snapshot.cumulative_counts.push_back(running);
  }
  snapshot.sum = sum_;
  snapshot.count = count_;
  return snapshot;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  double bound = start;
  for (int i = 0; i < count; ++i, bound *= factor) bounds.push_back(bound);
  return bounds;
}

std::vector<double> LinearBuckets(double start, double width, int count) {
  std::vector<double> bounds;
  for (int i = 0; i < count; ++i) bounds.push_back(start + width * i);
  return bounds;
}

std::vector<double> DefaultLatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool IsValidMetricName(absl::string_view name) {
  if (name.empty() || !(IsNameStart(name[0]) || name[0] == ':')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsNameStart(c) || IsDigit(c) || c == ':'; });
}

// [a-zA-Z_][a-zA-Z0-9_]*
bool IsValidLabelName(absl::string_view name) {
  if (name.empty() || !IsNameStart(name[0])) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return IsNameStart(c) || IsDigit(c); });
}

void FamilyBase::ReportLabelMismatch(size_t got) const {
  if (reported_mismatch_.exchange(true)) return;
  DINO_LOG(ERROR) << "metric " << name_ << " takes " << label_names_.size() << " label values, got "
                  << got << "; the update is not exported";
}

absl::Status Registry::CheckNewFamily(const std::string& name, const std::string& help,
                                      const std::vector<std::string>& labels,
                                      MetricType type) const {
  if (!IsValidMetricName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid metric name \"", name, "\""));
  }
  if (type == MetricType::kCounter && !absl::EndsWith(name, "_total")) {
    return absl::InvalidArgumentError(
        absl::StrCat("counter name \"", name, "\" must end in _total"));
  }
  if (help.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("metric ", name, " needs help text"));
  }
  std::set<std::string> seen;
  for (const std::string& label : labels) {
    if (!IsValidLabelName(label) || absl::StartsWith(label, "__")) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid label name \"", label, "\" for metric ", name));
    }
    if (type == MetricType::kHistogram && label == "le") {
      return absl::InvalidArgumentError(
          absl::StrCat("label \"le\" is reserved for histogram buckets (metric ", name, ")"));
    }
    if (!seen.insert(label).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate label name \"", label, "\" for metric ", name));
    }
  }
  for (const auto& family : families_) {
    if (SeriesNamesCollide(*family, name, type)) {
      return absl::AlreadyExistsError(
          absl::StrCat("metric ", name, " collides with registered ", family->name()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Family<Counter>*> Registry::AddCounter(std::string name, std::string help,
                                                      std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  DINO_RETURN_IF_ERROR(CheckNewFamily(name, help, label_names, MetricType::kCounter));
  auto family = std::make_unique<Family<Counter>>(std::move(name), std::move(help),
                                                  MetricType::kCounter, std::move(label_names),
                                                  [] { return std::make_shared<Counter>(); });
  Family<Counter>* result = family.get();
  families_.push_back(std::move(family));
  return result;
}

absl::StatusOr<Family<Gauge>*> Registry::AddGauge(std::string name, std::string help,
                                                  std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  DINO_RETURN_IF_ERROR(CheckNewFamily(name, help, label_names, MetricType::kGauge));
  auto family = std::make_unique<Family<Gauge>>(std::move(name), std::move(help),
                                                MetricType::kGauge, std::move(label_names),
                                                [] { return std::make_shared<Gauge>(); });
  Family<Gauge>* result = family.get();
  families_.push_back(std::move(family));
  return result;
}

absl::StatusOr<Family<Histogram>*> Registry::AddHistogram(std::string name, std::string help,
                                                          std::vector<std::string> label_names,
                                                          std::vector<double> upper_bounds) {
  DINO_RETURN_IF_ERROR(Annotate(CheckBuckets(upper_bounds), name));
  absl::MutexLock lock(&mu_);
  DINO_RETURN_IF_ERROR(CheckNewFamily(name, help, label_names, MetricType::kHistogram));
  auto family = std::make_unique<Family<Histogram>>(
      std::move(name), std::move(help), MetricType::kHistogram, std::move(label_names),
      [bounds = std::move(upper_bounds)] { return std::make_shared<Histogram>(bounds); });
  Family<Histogram>* result = family.get();
  families_.push_back(std::move(family));
  return result;
}

absl::Status Registry::AddCallbackGauge(std::string name, std::string help,
                                        std::function<double()> read) {
  DINO_ASSIGN_OR_RETURN(Family<Gauge> * family, AddGauge(std::move(name), std::move(help)));
  absl::MutexLock lock(&mu_);
  // The unlabelled child lives as long as the family, which lives as long as the registry.
  callback_gauges_.emplace_back(family->Get().get(), std::move(read));
  return absl::OkStatus();
}

void Registry::AddScrapeHook(std::function<void()> hook) {
  absl::MutexLock lock(&mu_);
  scrape_hooks_.push_back(std::move(hook));
}

std::string Registry::Render() const {
  std::vector<std::function<void()>> hooks;
  std::vector<std::pair<Gauge*, std::function<double()>>> callbacks;
  {
    absl::MutexLock lock(&mu_);
    hooks = scrape_hooks_;
    callbacks = callback_gauges_;
  }
  // Outside the lock: a hook may update families, and a slow read must not block registration.
  for (const auto& hook : hooks) hook();
  for (const auto& [gauge, read] : callbacks) gauge->Set(read());

  std::string out;
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& family : families_) family->Render(&out);
  return out;
}

size_t Registry::RemoveMatching(absl::string_view label_name, absl::string_view value) {
  absl::ReaderMutexLock lock(&mu_);
  size_t removed = 0;
  for (const auto& family : families_) removed += family->RemoveMatching(label_name, value);
  return removed;
}

}  // namespace metrics
}  // namespace dino
