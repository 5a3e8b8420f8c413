#include "common/proto_utf8.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/unknown_field_set.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace dino {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

// Nesting deeper than this is not walked (protobuf's own recursion limit is 100).
constexpr int kMaxDepth = 100;

absl::Status Walk(const Descriptor* descriptor, absl::string_view wire, const std::string& path,
                  int depth) {
  UnknownFieldSet fields;
  if (depth > kMaxDepth || !fields.ParseFromArray(wire.data(), static_cast<int>(wire.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a valid ", descriptor->name(), " message"));
  }
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& field = fields.field(i);
    if (field.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
    const FieldDescriptor* f = descriptor->FindFieldByNumber(field.number());
    if (f == nullptr) continue;
    const std::string field_path = absl::StrCat(path, ".", f->name());
    const std::string& bytes = field.length_delimited();
    if (f->type() == FieldDescriptor::TYPE_STRING) {
      if (auto bad = FindInvalidUtf8(bytes); bad.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat(field_path, ": not valid UTF-8 (",
                                                       DescribeInvalidUtf8(bytes, *bad),
                                                       "); string fields must be UTF-8"));
      }
    } else if (f->type() == FieldDescriptor::TYPE_MESSAGE) {
      absl::Status s = Walk(f->message_type(), bytes, field_path, depth + 1);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckProtoUtf8(const Descriptor* descriptor, absl::string_view wire,
                            absl::string_view what) {
  return Walk(descriptor, wire, std::string(what), 0);
}

}  // namespace dino
