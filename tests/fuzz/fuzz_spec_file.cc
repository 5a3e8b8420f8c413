// libFuzzer target: YAML/JSON job spec text -> JobSpec (spec/spec_file.h), with and without a
// "--set" override taken from the input's last line. Any input must give a JobSpec or a Status;
// a crash, a sanitizer report or an exception escaping ParseJobSpec is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "spec/spec_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)dino::spec::ParseJobSpec(text, "fuzz.yaml");
  const size_t newline = text.rfind('\n');
  if (newline != std::string::npos && newline + 1 < text.size()) {
    const std::vector<std::string> overrides = {text.substr(newline + 1)};
    (void)dino::spec::ParseJobSpec(text.substr(0, newline), "fuzz.yaml", overrides);
  }
  return 0;
}
