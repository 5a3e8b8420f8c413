// WatchView: how `dinoctl watch` shows a job's events.
//
// - kTty: one progress bar redrawn in place (epoch/step, loss, images/s, ETA, teacher entropy,
//   KL); state changes, checkpoints and collapse warnings print as lines above it.
// - kPlain: one line per event, for logs and pipes.
// - kJsonLines: each JobEvent as one line of protobuf JSON.
// It also tracks the job's state from the state-change events, which decides the exit code.
//
// Thread-safety: not thread-safe; one watch uses it from one thread. Failure: none (output errors
// are the stream's).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "dino/v1/job.pb.h"

namespace dino::client {

class WatchView {
 public:
  enum class Mode { kTty, kPlain, kJsonLines };
  WatchView(Mode mode, std::ostream* out) : mode_(mode), out_(out) {}

  void OnEvent(const dino::v1::JobEvent& event);
  // A note (reconnecting, ...) shown as a line in kTty/kPlain and dropped in kJsonLines.
  void Note(const std::string& text);
  // Ends the progress bar's line.
  void Finish();

  dino::v1::JobState state() const { return state_; }
  bool terminal() const;

  // "3m12s" for the remaining steps at the rate observed between the first and the latest
  // progress events; "-" until two reports with distinct steps and times were seen.
  std::string Eta(const dino::v1::StepStats& stats);

  // The line for a progress event in plain mode (also the text of the TTY bar after the bar).
  std::string ProgressText(const dino::v1::StepStats& stats);

 private:
  void PrintLine(const std::string& line);
  void DrawBar();

  Mode mode_;
  std::ostream* out_;
  dino::v1::JobState state_ = dino::v1::JOB_STATE_UNSPECIFIED;
  std::optional<dino::v1::StepStats> first_progress_;
  std::optional<dino::v1::StepStats> last_progress_;
  bool bar_drawn_ = false;
};

// The event as a plain line, without the progress details (those are ProgressText's).
std::string DescribeEvent(const dino::v1::JobEvent& event);

}  // namespace dino::client
