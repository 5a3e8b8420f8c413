// Job spec files: YAML or JSON text -> dino.v1.JobSpec, checked before anything is sent.
//
// The file maps 1:1 onto JobSpec through protobuf's JSON mapping: keys are the proto field names
// (snake_case) or their JSON names (lowerCamelCase), enums are their full value names
// ("DATASET_KIND_IDX"), maps are YAML maps. JSON is read by the same YAML parser, so both formats
// give line numbers. The YAML tree is walked against the JobSpec descriptor first, so an unknown
// key, a wrong type or a bad value (an integer out of range, an unknown enum name, a non-numeric
// number) is reported with its key path and line, e.g.
//   spec.yaml:12: optim.batch_size_per_rank: expected an integer, got "many"
// The checked tree is then converted to JSON and parsed with JsonStringToMessage.
// Range rules of the coordinator (e.g. batch_size_per_rank >= 1) are the coordinator's to check.
//
// Overrides ("--set key.path=value") replace or add one field before the check; the value is a
// YAML scalar or flow collection ("--set labels.team=vision", "--set optim.lr=0.001"). A map
// field takes the rest of the path as its key, so label keys may contain dots.
//
// Thread-safety: stateless functions. Failure: INVALID_ARGUMENT with the path and line; NOT_FOUND
// or the file system's error when the file cannot be read.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/file_system.h"
#include "dino/v1/job.pb.h"

namespace dino::spec {

// Parses `text` (YAML or JSON) named `source_name` in messages, after applying `overrides`
// ("key.path=value" each).
absl::StatusOr<dino::v1::JobSpec> ParseJobSpec(absl::string_view text,
                                               absl::string_view source_name,
                                               const std::vector<std::string>& overrides = {});

// Reads `path` through `fs` and parses it as ParseJobSpec does.
absl::StatusOr<dino::v1::JobSpec> LoadJobSpecFile(FileSystem* fs, const std::string& path,
                                                  const std::vector<std::string>& overrides = {});

}  // namespace dino::spec
