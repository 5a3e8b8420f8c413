// Rendering of dinotrain records for dinoctl: tables for people; JSON and YAML for programs.
//
// JSON is protobuf's canonical JSON mapping (lowerCamelCase names, enums by name, int64 as
// strings) with every primitive field printed, so a zero `restarts` is still there. YAML is the
// same document re-emitted as YAML. Tables are plain text, one row per record, columns separated
// by two spaces; ages are relative to `now`.
//
// Thread-safety: stateless. Failure: never fails (a message that cannot be printed as JSON is
// impossible for these generated types; the function then returns "{}").
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "dino/v1/coordinator.pb.h"
#include "google/protobuf/message.h"

namespace dino::client {

enum class OutputFormat { kTable, kJson, kYaml, kCsv };

// One line of compact JSON (for JSON lines) or pretty JSON.
std::string ToJson(const google::protobuf::Message& message, bool pretty = true);
// A JSON document as block YAML.
std::string JsonToYaml(const std::string& json);

// "42s", "5m", "3h", "2d"; "-" for an unset time.
std::string FormatAge(const google::protobuf::Timestamp& time, absl::Time now);
// "1.5 MiB".
std::string FormatBytes(int64_t bytes);
// "STATE" without the enum prefix, e.g. "RUNNING".
std::string ShortStateName(dino::v1::JobState state);
// "37%" from the latest stats ("0.4%": one decimal below 10%), "-" before the first report.
std::string FormatProgress(const dino::v1::Job& job);

// Aligns rows into columns (the first row is the header).
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

// A WAITING column (Job.queued_reason) is added when at least one job has a reason.
std::string FormatJobsTable(const std::vector<dino::v1::Job>& jobs, absl::Time now);
std::string FormatJobsJson(const std::vector<dino::v1::Job>& jobs);

// The job with its checkpoints: a description for people ...
std::string FormatJobDescription(const dino::v1::Job& job,
                                 const std::vector<dino::v1::CheckpointInfo>& checkpoints,
                                 absl::Time now);
// ... or the job's protobuf JSON with a "checkpoints" array added (Job has no such field).
std::string FormatJobJson(const dino::v1::Job& job,
                          const std::vector<dino::v1::CheckpointInfo>& checkpoints);

std::string FormatCheckpointsTable(const std::vector<dino::v1::CheckpointInfo>& checkpoints,
                                   absl::Time now);
std::string FormatCheckpointsJson(const std::vector<dino::v1::CheckpointInfo>& checkpoints);

std::string FormatWorkersTable(const std::vector<dino::v1::WorkerInfo>& workers, absl::Time now);
std::string FormatWorkersJson(const std::vector<dino::v1::WorkerInfo>& workers);

// One row per step, one column per series (blank where a series has no point at that step).
std::string FormatMetricsTable(const dino::v1::GetJobMetricsResponse& metrics);
std::string FormatMetricsCsv(const dino::v1::GetJobMetricsResponse& metrics);

}  // namespace dino::client
