// The table of defaults (spec/defaults.h, applied by ApplyJobSpecDefaults) against what job.proto
// documents: every scalar field of the spec but data.kind documents its default ("Default X"),
// and ApplyJobSpecDefaults gives it X. The comments come from job.proto itself, compiled by protoc
// with its source info at build time (DINO_JOB_PROTO_DESCRIPTOR), so neither can change without the
// other.
#include "spec/defaults.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "dino/v1/job.pb.h"
#include "google/protobuf/descriptor.pb.h"
#include "spec/job_spec.h"

namespace dino::spec {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// "ModelSpec.dim" -> the field's leading and trailing comments in job.proto.
std::map<std::string, std::string> FieldComments() {
  std::ifstream in(DINO_JOB_PROTO_DESCRIPTOR, std::ios::binary);
  google::protobuf::FileDescriptorSet set;
  EXPECT_TRUE(in && set.ParseFromIstream(&in)) << DINO_JOB_PROTO_DESCRIPTOR;
  std::map<std::string, std::string> comments;
  for (const auto& file : set.file()) {
    for (const auto& location : file.source_code_info().location()) {
      // {4 (message_type), message index, 2 (field), field index}
      const auto& path = location.path();
      if (path.size() != 4 || path[0] != 4 || path[2] != 2) continue;
      const auto& message = file.message_type(path[1]);
      comments[absl::StrCat(message.name(), ".", message.field(path[3]).name())] =
          absl::StrCat(location.leading_comments(), " ", location.trailing_comments());
    }
  }
  return comments;
}

// The token after "Default" / "default" / "Default:" in `comment`, without trailing punctuation:
// "0.0005", "\"vit_small\"", "none", "optim.warmup_epochs"; nullopt when there is none.
std::optional<std::string> DocumentedDefault(const std::string& comment) {
  static const std::regex kDefault(R"re(\b[Dd]efault:?\s+("[^"]*"|[^\s;,(]+))re");
  std::smatch match;
  if (!std::regex_search(comment, match, kDefault)) return std::nullopt;
  std::string token = match[1];
  while (!token.empty() && token.back() == '.' && token.front() != '"') token.pop_back();
  return token;
}

// The field at `path` ("optim.warmup_epochs") of `spec`, as text; nullopt if there is none.
std::optional<std::string> ValueAt(const dino::v1::JobSpec& spec, const std::string& path);

std::string ValueText(const Message& message, const FieldDescriptor* f) {
  const auto* r = message.GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      return absl::StrCat("\"", r->GetString(message, f), "\"");
    case FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(message, f) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(r->GetInt32(message, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(r->GetInt64(message, f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat(r->GetUInt64(message, f));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return absl::StrCat(r->GetDouble(message, f));
    case FieldDescriptor::CPPTYPE_ENUM:
      return r->GetEnum(message, f)->name();
    default:
      ADD_FAILURE() << f->full_name() << ": no text form for this type";
      return "";
  }
}

std::optional<std::string> ValueAt(const dino::v1::JobSpec& spec, const std::string& path) {
  const Message* message = &spec;
  const std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* f = message->GetDescriptor()->FindFieldByName(parts[i]);
    if (f == nullptr || f->is_repeated()) return std::nullopt;
    if (i + 1 == parts.size()) return ValueText(*message, f);
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) return std::nullopt;
    message = &message->GetReflection()->GetMessage(*message, f);
  }
  return std::nullopt;
}

// Whether `documented` ("1e-6", "4.0", "\"\"", "none") is the value `actual` (ValueText's form).
bool SameValue(const FieldDescriptor* f, const std::string& documented, const std::string& actual) {
  if (documented == "none") return actual == "\"\"";
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
    double a = 0, b = 0;
    return absl::SimpleAtod(documented, &a) && absl::SimpleAtod(actual, &b) && a == b;
  }
  return documented == actual;
}

struct Check {
  const dino::v1::JobSpec& defaulted;
  const std::map<std::string, std::string>& comments;
};

void CheckMessage(const Message& message, const std::string& prefix, Check* check) {
  const Descriptor* d = message.GetDescriptor();
  const auto* r = message.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const std::string path = absl::StrCat(prefix, f->name());
    if (f->is_repeated()) continue;  // labels: no default.
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      CheckMessage(r->GetMessage(message, f), absl::StrCat(path, "."), check);
      continue;
    }
    const auto comment = check->comments.find(absl::StrCat(d->name(), ".", f->name()));
    ASSERT_NE(comment, check->comments.end()) << path << " has no comment in job.proto";
    const std::optional<std::string> documented = DocumentedDefault(comment->second);
    const bool has_value =
        f->has_presence() ? r->HasField(message, f) : r->GetEnumValue(message, f) != 0;
    if (!documented.has_value()) {
      // The one field a spec must set: it has no default.
      EXPECT_EQ(path, "data.kind") << path << ": job.proto documents no default";
      EXPECT_FALSE(has_value) << path << " gets a default that job.proto does not document: "
                              << ValueText(message, f);
      continue;
    }
    ASSERT_TRUE(has_value) << path << ": job.proto documents default " << *documented
                           << " but ApplyJobSpecDefaults leaves it unset";
    std::string expected = *documented;
    // "Default: optim.warmup_epochs": the value of another field of the spec.
    if (std::optional<std::string> other = ValueAt(check->defaulted, expected);
        other.has_value() && expected.find('.') != std::string::npos &&
        !absl::ascii_isdigit(expected[0])) {
      expected = *other;
    }
    EXPECT_TRUE(SameValue(f, expected, ValueText(message, f)))
        << path << ": job.proto documents default " << *documented << ", the table gives "
        << ValueText(message, f);
  }
}

TEST(DefaultsTest, EveryDefaultIsTheOneJobProtoDocuments) {
  const std::map<std::string, std::string> comments = FieldComments();
  ASSERT_FALSE(comments.empty());
  dino::v1::JobSpec spec;
  ApplyJobSpecDefaults(&spec);
  Check check{spec, comments};
  CheckMessage(spec, "", &check);
}

TEST(DefaultsTest, DocumentedDefaultsAreRead) {
  EXPECT_EQ(DocumentedDefault(" \"custom\" takes them. Default \"vit_small\".\n"), "\"vit_small\"");
  EXPECT_EQ(DocumentedDefault("\"custom\" only; default 384. Must be divisible by heads."), "384");
  EXPECT_EQ(DocumentedDefault("Default 1e-6."), "1e-6");
  EXPECT_EQ(DocumentedDefault("Default 3600;\n 0 disables"), "3600");
  EXPECT_EQ(DocumentedDefault("Default \"\" (no deduplication)."), "\"\"");
  EXPECT_EQ(DocumentedDefault("Default: optim.warmup_epochs.\n"), "optim.warmup_epochs");
  EXPECT_EQ(DocumentedDefault("Required."), std::nullopt);
}

TEST(DefaultsTest, ThePresetsDecideTheModelShape) {
  for (const ModelPreset& preset : kModelPresets) {
    dino::v1::JobSpec spec;
    spec.mutable_model()->set_preset(std::string(preset.name));
    spec.mutable_model()->set_dim(1);  // A preset overrides the shape fields.
    ApplyJobSpecDefaults(&spec);
    EXPECT_EQ(spec.model().dim(), preset.dim) << preset.name;
    EXPECT_EQ(spec.model().depth(), preset.depth) << preset.name;
    EXPECT_EQ(spec.model().heads(), preset.heads) << preset.name;
  }
  EXPECT_EQ(FindModelPreset(kJobSpecDefaults.model.preset), &kModelPresets[1]);
  EXPECT_EQ(FindModelPreset(kCustomModelPreset), nullptr);
}

TEST(DefaultsTest, ApplyingTwiceChangesNothing) {
  dino::v1::JobSpec once;
  once.mutable_optim()->set_warmup_epochs(4);
  ApplyJobSpecDefaults(&once);
  dino::v1::JobSpec twice = once;
  ApplyJobSpecDefaults(&twice);
  EXPECT_EQ(once.SerializeAsString(), twice.SerializeAsString());
  EXPECT_EQ(once.collapse().ignore_before_epoch(), 4);
}

}  // namespace
}  // namespace dino::spec
