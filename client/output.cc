#include "client/output.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"
#include "proto/dino/time_util.h"

namespace dino::client {
namespace {

using google::protobuf::util::MessageToJsonString;

std::string ToJsonWithOptions(const google::protobuf::Message& message, bool pretty,
                              bool proto_names) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  options.always_print_enums_as_ints = false;
  options.preserve_proto_field_names = proto_names;
  std::string out;
  if (!MessageToJsonString(message, &out, options).ok()) return "{}";
  return out;
}

void EmitYaml(YAML::Emitter& emitter, const YAML::Node& node) {
  if (node.IsMap()) {
    emitter << YAML::BeginMap;
    for (const auto& kv : node) {
      emitter << YAML::Key << kv.first.Scalar() << YAML::Value;
      EmitYaml(emitter, kv.second);
    }
    emitter << YAML::EndMap;
  } else if (node.IsSequence()) {
    // Empty collections print inline ("[]"); block style cannot express them.
    if (node.size() == 0) emitter << YAML::Flow;
    emitter << YAML::BeginSeq;
    for (const auto& item : node) EmitYaml(emitter, item);
    emitter << YAML::EndSeq;
  } else if (node.IsScalar()) {
    emitter << node.Scalar();
  } else {
    emitter << YAML::Null;
  }
}

bool IsSet(const google::protobuf::Timestamp& t) { return t.seconds() != 0 || t.nanos() != 0; }

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (!IsSet(t)) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", FromTimestampProto(t), absl::UTCTimeZone());
}

std::string EnumSuffix(const std::string& name, absl::string_view prefix) {
  return absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name;
}

// The pretty JSON of `message` without its outer braces: its fields at the top-level indentation.
std::string InnerFields(const google::protobuf::Message& message) {
  std::string json = ToJsonWithOptions(message, /*pretty=*/true, /*proto_names=*/false);
  absl::string_view inner = absl::StripAsciiWhitespace(json);
  inner.remove_prefix(1);  // "{"
  inner.remove_suffix(1);  // "}"
  return std::string(absl::StripTrailingAsciiWhitespace(absl::StripLeadingAsciiWhitespace(inner)));
}

std::string Fixed(double v, int digits) { return absl::StrFormat("%.*f", digits, v); }

}  // namespace

std::string ToJson(const google::protobuf::Message& message, bool pretty) {
  return ToJsonWithOptions(message, pretty, /*proto_names=*/false);
}

std::string JsonToYaml(const std::string& json) {
  YAML::Emitter emitter;
  try {
    EmitYaml(emitter, YAML::Load(json));
  } catch (const YAML::Exception&) {
    return json;
  }
  return absl::StrCat(emitter.c_str(), "\n");
}

std::string FormatAge(const google::protobuf::Timestamp& time, absl::Time now) {
  if (!IsSet(time)) return "-";
  int64_t s = std::max<int64_t>(0, absl::ToInt64Seconds(now - FromTimestampProto(time)));
  if (s < 120) return absl::StrCat(s, "s");
  if (s < 2 * 3600) return absl::StrCat(s / 60, "m");
  if (s < 2 * 86400) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double v = static_cast<double>(bytes) / 1024;
  for (const char* unit : {"KiB", "MiB", "GiB"}) {
    if (v < 1024 || absl::string_view(unit) == "GiB") return absl::StrFormat("%.1f %s", v, unit);
    v /= 1024;
  }
  return absl::StrCat(bytes, " B");
}

std::string ShortStateName(dino::v1::JobState state) {
  return EnumSuffix(dino::v1::JobState_Name(state), "JOB_STATE_");
}

std::string FormatProgress(const dino::v1::Job& job) {
  if (!job.has_latest_stats() || job.latest_stats().total_steps() <= 0) {
    return job.state() == dino::v1::JOB_STATE_SUCCEEDED ? "100%" : "-";
  }
  const auto& s = job.latest_stats();
  // Per mille, rounded down so that an unfinished job never shows 100%; one decimal below 10%,
  // so that the first steps of a long job show as moving rather than as 0%.
  const int64_t permille = std::min<int64_t>(1000, (s.step() + 1) * 1000 / s.total_steps());
  if (permille < 100) return absl::StrFormat("%d.%d%%", permille / 10, permille % 10);
  return absl::StrCat(permille / 10, "%");
}

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out += std::string(absl::StripTrailingAsciiWhitespace(line)) + "\n";
  }
  return out;
}

std::string FormatJobsTable(const std::vector<dino::v1::Job>& jobs, absl::Time now) {
  // The WAITING column only when a job waits, so that a table of running and finished jobs keeps
  // its width; it is last because the reasons are long.
  const bool waiting = std::any_of(jobs.begin(), jobs.end(), [](const dino::v1::Job& job) {
    return !job.queued_reason().empty();
  });
  std::vector<std::vector<std::string>> rows = {
      {"ID", "NAME", "STATE", "PROGRESS", "AGE", "RESTARTS"}};
  if (waiting) rows[0].push_back("WAITING");
  for (const auto& job : jobs) {
    rows.push_back({job.id(), job.spec().name().empty() ? "-" : job.spec().name(),
                    ShortStateName(job.state()), FormatProgress(job),
                    FormatAge(job.submit_time(), now), absl::StrCat(job.restarts())});
    if (waiting) rows.back().push_back(job.queued_reason().empty() ? "-" : job.queued_reason());
  }
  return FormatTable(rows);
}

std::string FormatJobsJson(const std::vector<dino::v1::Job>& jobs) {
  dino::v1::ListJobsResponse list;
  for (const auto& job : jobs) *list.add_jobs() = job;
  return ToJson(list);
}

std::string FormatJobJson(const dino::v1::Job& job,
                          const std::vector<dino::v1::CheckpointInfo>& checkpoints) {
  // Job has no checkpoints field: splice ListCheckpointsResponse's one into the job object, both
  // printed by protobuf (field order, deterministic) at the same indentation.
  dino::v1::ListCheckpointsResponse list;
  for (const auto& c : checkpoints) *list.add_checkpoints() = c;
  std::string job_fields = InnerFields(job);
  return absl::StrCat("{\n ", job_fields, job_fields.empty() ? "" : ",\n ", InnerFields(list),
                      "\n}\n");
}

std::string FormatCheckpointsTable(const std::vector<dino::v1::CheckpointInfo>& checkpoints,
                                   absl::Time now) {
  std::vector<std::vector<std::string>> rows = {
      {"ID", "STEP", "EPOCH", "SIZE", "LOSS", "KNN_TOP1", "FINAL", "AGE", "SHA256"}};
  for (const auto& c : checkpoints) {
    rows.push_back(
        {c.id(), absl::StrCat(c.step()), absl::StrCat(c.epoch()), FormatBytes(c.size_bytes()),
         Fixed(c.loss(), 4), c.has_knn_top1() ? Fixed(c.knn_top1(), 2) + "%" : "-",
         c.is_final() ? "yes" : "no", FormatAge(c.create_time(), now), c.sha256().substr(0, 12)});
  }
  return FormatTable(rows);
}

std::string FormatCheckpointsJson(const std::vector<dino::v1::CheckpointInfo>& checkpoints) {
  dino::v1::ListCheckpointsResponse list;
  for (const auto& c : checkpoints) *list.add_checkpoints() = c;
  return ToJson(list);
}

std::string FormatWorkersTable(const std::vector<dino::v1::WorkerInfo>& workers, absl::Time now) {
  std::vector<std::vector<std::string>> rows = {
      {"ID", "NAME", "HOST", "DEVICE", "THREADS", "STATE", "JOB", "HEARTBEAT"}};
  for (const auto& w : workers) {
    std::string job = w.job_id().empty() ? "-" : absl::StrCat(w.job_id(), " (rank ", w.rank(), ")");
    rows.push_back({w.id(), w.name(), w.hostname(), w.device(), absl::StrCat(w.threads()),
                    EnumSuffix(dino::v1::WorkerState_Name(w.state()), "WORKER_STATE_"), job,
                    FormatAge(w.last_heartbeat(), now)});
  }
  return FormatTable(rows);
}

std::string FormatWorkersJson(const std::vector<dino::v1::WorkerInfo>& workers) {
  dino::v1::ListWorkersResponse list;
  for (const auto& w : workers) *list.add_workers() = w;
  return ToJson(list);
}

namespace {

// step -> series name -> value, and the series names in response order.
struct MetricsGrid {
  std::vector<std::string> names;
  std::map<int64_t, std::map<std::string, double>> rows;
};

MetricsGrid BuildGrid(const dino::v1::GetJobMetricsResponse& metrics) {
  MetricsGrid grid;
  for (const auto& series : metrics.series()) {
    grid.names.push_back(series.name());
    for (const auto& p : series.points()) grid.rows[p.step()][series.name()] = p.value();
  }
  return grid;
}

std::vector<std::vector<std::string>> GridRows(const MetricsGrid& grid) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"step"};
  header.insert(header.end(), grid.names.begin(), grid.names.end());
  rows.push_back(header);
  for (const auto& [step, values] : grid.rows) {
    std::vector<std::string> row = {absl::StrCat(step)};
    for (const auto& name : grid.names) {
      auto it = values.find(name);
      row.push_back(it == values.end() ? "" : absl::StrFormat("%.6g", it->second));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

std::string FormatMetricsTable(const dino::v1::GetJobMetricsResponse& metrics) {
  return FormatTable(GridRows(BuildGrid(metrics)));
}

std::string FormatMetricsCsv(const dino::v1::GetJobMetricsResponse& metrics) {
  std::string out;
  for (const auto& row : GridRows(BuildGrid(metrics))) {
    absl::StrAppend(&out, absl::StrJoin(row, ","), "\n");
  }
  return out;
}

std::string FormatJobDescription(const dino::v1::Job& job,
                                 const std::vector<dino::v1::CheckpointInfo>& checkpoints,
                                 absl::Time now) {
  std::vector<std::vector<std::string>> head;
  head.push_back({"Job:", job.id()});
  head.push_back({"Name:", job.spec().name().empty() ? "-" : job.spec().name()});
  std::string state = ShortStateName(job.state());
  if (job.failure_reason() != dino::v1::FAILURE_REASON_UNSPECIFIED) {
    absl::StrAppend(
        &state, " (",
        EnumSuffix(dino::v1::FailureReason_Name(job.failure_reason()), "FAILURE_REASON_"), ")");
  }
  head.push_back({"State:", state});
  if (!job.message().empty()) head.push_back({"Message:", job.message()});
  // Set by the coordinator while the job is QUEUED or RESTARTING.
  if (!job.queued_reason().empty()) head.push_back({"Waiting:", job.queued_reason()});
  std::vector<std::string> labels;
  for (const auto& [k, v] :
       std::map<std::string, std::string>(job.spec().labels().begin(), job.spec().labels().end())) {
    labels.push_back(absl::StrCat(k, "=", v));
  }
  head.push_back({"Labels:", labels.empty() ? "-" : absl::StrJoin(labels, ",")});
  head.push_back({"Submitted:", absl::StrCat(FormatTime(job.submit_time()), " (",
                                             FormatAge(job.submit_time(), now), " ago)")});
  // Empty only from a coordinator older than Job.submitter.
  if (!job.submitter().empty()) head.push_back({"Submitted by:", job.submitter()});
  head.push_back({"Started:", FormatTime(job.start_time())});
  head.push_back({"Ended:", FormatTime(job.end_time())});
  head.push_back({"Restarts:", absl::StrCat(job.restarts())});
  head.push_back({"Progress:", FormatProgress(job)});
  if (job.has_latest_stats()) {
    const auto& s = job.latest_stats();
    head.push_back({"Latest:", absl::StrCat("epoch ", s.epoch(), " step ", s.step(), "/",
                                            s.total_steps(), "  loss ", Fixed(s.loss(), 4), "  lr ",
                                            absl::StrFormat("%.3g", s.lr()), "  img/s ",
                                            Fixed(s.images_per_second(), 1))});
    head.push_back({"Teacher:",
                    absl::StrCat("entropy ", Fixed(s.teacher_entropy(), 4), "  batch-mean entropy ",
                                 Fixed(s.batch_mean_entropy(), 4), "  kl ", Fixed(s.kl(), 4),
                                 "  temp ", Fixed(s.teacher_temp(), 4))});
  }
  head.push_back(
      {"Best k-NN:", job.has_best_knn_top1() ? Fixed(job.best_knn_top1(), 2) + "%" : "-"});
  head.push_back({"Collapse:", job.collapse_flagged() ? "FLAGGED" : "no"});
  std::string out = FormatTable(head);
  for (const auto& w : job.collapse_warnings()) {
    absl::StrAppend(&out, "  warning: ", w.metric(), " ", absl::StrFormat("%.6g", w.value()), " < ",
                    absl::StrFormat("%.6g", w.threshold()), " for ", w.consecutive_reports(),
                    " reports at step ", w.step(), "\n");
  }
  out += "\nAttempts:\n";
  std::vector<std::vector<std::string>> attempts = {
      {"  #", "STATE", "START", "END", "RESUMED", "WORKERS", "FAILURE"}};
  for (const auto& a : job.attempts()) {
    std::vector<std::string> workers;
    for (const auto& r : a.ranks()) {
      workers.push_back(
          absl::StrCat(r.rank(), ":", r.worker_name().empty() ? r.worker_id() : r.worker_name()));
    }
    std::string failure = "-";
    if (a.failure_reason() != dino::v1::FAILURE_REASON_UNSPECIFIED) {
      failure = EnumSuffix(dino::v1::FailureReason_Name(a.failure_reason()), "FAILURE_REASON_");
      if (!a.failure_message().empty()) absl::StrAppend(&failure, ": ", a.failure_message());
    }
    attempts.push_back({absl::StrCat("  ", a.number()),
                        EnumSuffix(dino::v1::AttemptState_Name(a.state()), "ATTEMPT_STATE_"),
                        FormatTime(a.start_time()), FormatTime(a.end_time()),
                        a.resume_checkpoint_id().empty()
                            ? "-"
                            : absl::StrCat(a.resume_checkpoint_id(), "@", a.resume_step()),
                        workers.empty() ? "-" : absl::StrJoin(workers, ","), failure});
  }
  out += attempts.size() > 1 ? FormatTable(attempts) : "  none\n";
  out += "\nCheckpoints:\n";
  if (checkpoints.empty()) {
    out += "  none\n";
  } else {
    std::string table = FormatCheckpointsTable(checkpoints, now);
    for (absl::string_view line : absl::StrSplit(table, '\n', absl::SkipEmpty())) {
      absl::StrAppend(&out, "  ", line, "\n");
    }
  }
  out += "\nSpec (defaults applied):\n";
  std::string spec_yaml = JsonToYaml(ToJsonWithOptions(job.spec(), false, /*proto_names=*/true));
  for (absl::string_view line : absl::StrSplit(spec_yaml, '\n', absl::SkipEmpty())) {
    absl::StrAppend(&out, "  ", line, "\n");
  }
  return out;
}

}  // namespace dino::client
