#include "client/watch_view.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/output.h"
#include "proto/dino/time_util.h"

namespace dino::client {
namespace {

constexpr int kBarWidth = 20;

std::string Suffix(const std::string& name, absl::string_view prefix) {
  return absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name;
}

std::string CompactDuration(absl::Duration d) {
  int64_t s = std::max<int64_t>(0, absl::ToInt64Seconds(d));
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrCat(s, "s");
}

}  // namespace

std::string DescribeEvent(const dino::v1::JobEvent& event) {
  std::string prefix = absl::StrCat("#", event.index(), " ");
  switch (event.event_case()) {
    case dino::v1::JobEvent::kStateChange: {
      const auto& c = event.state_change();
      std::string line = absl::StrCat(prefix, "state ", ShortStateName(c.from_state()), " -> ",
                                      ShortStateName(c.to_state()));
      if (c.attempt() > 0) absl::StrAppend(&line, " (attempt ", c.attempt(), ")");
      if (c.failure_reason() != dino::v1::FAILURE_REASON_UNSPECIFIED) {
        absl::StrAppend(
            &line, " ",
            Suffix(dino::v1::FailureReason_Name(c.failure_reason()), "FAILURE_REASON_"));
      }
      if (!c.message().empty()) absl::StrAppend(&line, ": ", c.message());
      return line;
    }
    case dino::v1::JobEvent::kProgress:
      return absl::StrCat(prefix, "progress");
    case dino::v1::JobEvent::kCheckpoint: {
      const auto& c = event.checkpoint();
      std::string line = absl::StrCat(prefix, "checkpoint ", c.id(), " step ", c.step(), " epoch ",
                                      c.epoch(), " ", FormatBytes(c.size_bytes()));
      if (c.has_knn_top1())
        absl::StrAppend(&line, absl::StrFormat(" knn_top1 %.2f%%", c.knn_top1()));
      if (c.is_final()) absl::StrAppend(&line, " final");
      return line;
    }
    case dino::v1::JobEvent::kCollapseWarning: {
      const auto& w = event.collapse_warning();
      return absl::StrFormat(
          "%swarning: possible collapse: %s %.6g < %.6g for %d reports at step %d", prefix,
          w.metric(), w.value(), w.threshold(), w.consecutive_reports(), w.step());
    }
    case dino::v1::JobEvent::EVENT_NOT_SET:
      break;
  }
  return absl::StrCat(prefix, "event");
}

bool WatchView::terminal() const {
  return state_ == dino::v1::JOB_STATE_SUCCEEDED || state_ == dino::v1::JOB_STATE_FAILED ||
         state_ == dino::v1::JOB_STATE_CANCELLED;
}

std::string WatchView::Eta(const dino::v1::StepStats& stats) {
  if (!first_progress_.has_value() || stats.total_steps() <= 0) return "-";
  int64_t steps = stats.step() - first_progress_->step();
  absl::Duration elapsed =
      FromTimestampProto(stats.time()) - FromTimestampProto(first_progress_->time());
  if (steps <= 0 || elapsed <= absl::ZeroDuration()) return "-";
  int64_t remaining = std::max<int64_t>(0, stats.total_steps() - stats.step() - 1);
  return CompactDuration(elapsed * (static_cast<double>(remaining) / steps));
}

std::string WatchView::ProgressText(const dino::v1::StepStats& s) {
  return absl::StrFormat("epoch %d step %d/%d loss %.4f img/s %.1f eta %s entropy %.4f kl %.4f",
                         s.epoch(), s.step() + 1, s.total_steps(), s.loss(), s.images_per_second(),
                         Eta(s), s.teacher_entropy(), s.kl());
}

void WatchView::PrintLine(const std::string& line) {
  if (mode_ == Mode::kTty && bar_drawn_) *out_ << "\r\033[K";
  *out_ << line << "\n";
  if (mode_ == Mode::kTty && bar_drawn_) DrawBar();
  out_->flush();
}

void WatchView::DrawBar() {
  if (!last_progress_.has_value()) return;
  const auto& s = *last_progress_;
  double fraction = s.total_steps() > 0
                        ? std::min(1.0, static_cast<double>(s.step() + 1) / s.total_steps())
                        : 0.0;
  int filled = static_cast<int>(fraction * kBarWidth);
  *out_ << "\r\033[K[" << std::string(filled, '#') << std::string(kBarWidth - filled, '-')
        << absl::StrFormat("] %3d%% ", static_cast<int>(fraction * 100)) << ProgressText(s);
  out_->flush();
  bar_drawn_ = true;
}

void WatchView::OnEvent(const dino::v1::JobEvent& event) {
  if (event.has_state_change()) state_ = event.state_change().to_state();
  if (event.has_progress()) {
    if (!first_progress_.has_value()) first_progress_ = event.progress();
    last_progress_ = event.progress();
  }
  switch (mode_) {
    case Mode::kJsonLines:
      *out_ << ToJson(event, /*pretty=*/false) << "\n";
      out_->flush();
      return;
    case Mode::kPlain:
      if (event.has_progress()) {
        *out_ << absl::StrCat("#", event.index(), " progress ", ProgressText(event.progress()))
              << "\n";
        out_->flush();
      } else {
        PrintLine(DescribeEvent(event));
      }
      return;
    case Mode::kTty:
      if (event.has_progress()) {
        DrawBar();
      } else {
        PrintLine(DescribeEvent(event));
      }
      return;
  }
}

void WatchView::Note(const std::string& text) {
  if (mode_ == Mode::kJsonLines) return;
  PrintLine(text);
}

void WatchView::Finish() {
  if (mode_ == Mode::kTty && bar_drawn_) {
    *out_ << "\n";
    out_->flush();
    bar_drawn_ = false;
  }
}

}  // namespace dino::client
