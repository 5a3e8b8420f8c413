// YAML -> checked JSON -> JobSpec. yaml-cpp parses (it keeps line marks, which protobuf's JSON
// parser does not report); the descriptor walk below is what names the key path and the line.
#include "spec/spec_file.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"

namespace dino::spec {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;

// Where a node came from: "spec.yaml:12" or "--set optim.lr".
struct Origin {
  std::string source;
  bool has_lines = true;
};

std::string Where(const Origin& origin, const YAML::Node& node) {
  if (!origin.has_lines || node.Mark().is_null()) return origin.source;
  return absl::StrCat(origin.source, ":", node.Mark().line + 1);
}

absl::Status Error(const Origin& origin, const YAML::Node& node, absl::string_view path,
                   absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Where(origin, node), ": ", path, ": ", what));
}

std::string JsonQuote(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += "\"";
  return out;
}

std::string Shown(const YAML::Node& node) {
  if (node.IsScalar()) return JsonQuote(node.Scalar());
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a map";
  return "nothing";
}

const FieldDescriptor* FindField(const Descriptor* d, const std::string& key) {
  const FieldDescriptor* f = d->FindFieldByName(key);
  if (f != nullptr) return f;
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->json_name() == key) return d->field(i);
  }
  return nullptr;
}

std::string Join(absl::string_view path, absl::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}

// Converts one scalar value of a non-message type to JSON text, checking its type and range.
absl::StatusOr<std::string> ScalarToJson(const FieldDescriptor* f, const YAML::Node& node,
                                         const std::string& path, const Origin& origin) {
  if (!node.IsScalar()) {
    if (node.IsNull()) return Error(origin, node, path, "has no value");
    return Error(origin, node, path,
                 absl::StrCat("expected ", f->type_name(), ", got ", Shown(node)));
  }
  const std::string& text = node.Scalar();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      // Raw bytes were checked with the whole text; this catches escapes ("\udc80" in JSON).
      if (auto bad = FindInvalidUtf8(text); bad.has_value()) {
        return Error(origin, node, path,
                     absl::StrCat("not valid UTF-8 (", DescribeInvalidUtf8(text, *bad), ")"));
      }
      return JsonQuote(text);
    case FieldDescriptor::CPPTYPE_BOOL: {
      std::string lower = absl::AsciiStrToLower(text);
      if (lower == "true" || lower == "false") return lower;
      return Error(origin, node, path, absl::StrCat("expected true or false, got ", Shown(node)));
    }
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v = 0;
      if (!absl::SimpleAtoi(text, &v)) {
        return Error(origin, node, path, absl::StrCat("expected an integer, got ", Shown(node)));
      }
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_INT32 &&
          (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())) {
        return Error(origin, node, path, absl::StrCat("out of range for int32: ", text));
      }
      return absl::StrCat("\"", v, "\"");
    }
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v = 0;
      if (!absl::SimpleAtoi(text, &v)) {
        return Error(origin, node, path,
                     absl::StrCat("expected a non-negative integer, got ", Shown(node)));
      }
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32 &&
          v > std::numeric_limits<uint32_t>::max()) {
        return Error(origin, node, path, absl::StrCat("out of range for uint32: ", text));
      }
      return absl::StrCat("\"", v, "\"");
    }
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double v = 0;
      if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) {
        return Error(origin, node, path, absl::StrCat("expected a number, got ", Shown(node)));
      }
      return absl::StrFormat("%.17g", v);  // Every digit survives the round trip.
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const EnumDescriptor* e = f->enum_type();
      if (e->FindValueByName(text) != nullptr) return JsonQuote(text);
      std::vector<std::string> names;
      for (int i = 0; i < e->value_count(); ++i) {
        if (e->value(i)->number() != 0) names.push_back(e->value(i)->name());
      }
      return Error(origin, node, path,
                   absl::StrCat("unknown value ", Shown(node), "; expected one of ",
                                absl::StrJoin(names, ", ")));
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return Error(origin, node, path, "unsupported field type");
}

absl::StatusOr<std::string> MessageToJson(const Descriptor* d, const YAML::Node& node,
                                          const std::string& path, const Origin& origin);

absl::StatusOr<std::string> ValueToJson(const FieldDescriptor* f, const YAML::Node& node,
                                        const std::string& path, const Origin& origin) {
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    return MessageToJson(f->message_type(), node, path, origin);
  }
  return ScalarToJson(f, node, path, origin);
}

absl::StatusOr<std::string> FieldToJson(const FieldDescriptor* f, const YAML::Node& node,
                                        const std::string& path, const Origin& origin) {
  if (f->is_map()) {
    if (!node.IsMap()) {
      return Error(origin, node, path, absl::StrCat("expected a map, got ", Shown(node)));
    }
    const FieldDescriptor* value_field = f->message_type()->FindFieldByName("value");
    std::vector<std::string> entries;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) return Error(origin, kv.first, path, "map keys must be scalars");
      if (auto bad = FindInvalidUtf8(kv.first.Scalar()); bad.has_value()) {
        return Error(origin, kv.first, path,
                     absl::StrCat("a key is not valid UTF-8 (",
                                  DescribeInvalidUtf8(kv.first.Scalar(), *bad), ")"));
      }
      std::string key_path = absl::StrCat(path, ".", kv.first.Scalar());
      if (kv.second.IsNull()) return Error(origin, kv.first, key_path, "has no value");
      DINO_ASSIGN_OR_RETURN(std::string value,
                            ValueToJson(value_field, kv.second, key_path, origin));
      entries.push_back(absl::StrCat(JsonQuote(kv.first.Scalar()), ":", value));
    }
    return absl::StrCat("{", absl::StrJoin(entries, ","), "}");
  }
  if (f->is_repeated()) {
    if (!node.IsSequence()) {
      return Error(origin, node, path, absl::StrCat("expected a list, got ", Shown(node)));
    }
    std::vector<std::string> items;
    for (size_t i = 0; i < node.size(); ++i) {
      DINO_ASSIGN_OR_RETURN(std::string item,
                            ValueToJson(f, node[i], absl::StrCat(path, "[", i, "]"), origin));
      items.push_back(std::move(item));
    }
    return absl::StrCat("[", absl::StrJoin(items, ","), "]");
  }
  return ValueToJson(f, node, path, origin);
}

absl::StatusOr<std::string> MessageToJson(const Descriptor* d, const YAML::Node& node,
                                          const std::string& path, const Origin& origin) {
  if (!node.IsMap()) {
    return Error(origin, node, path.empty() ? "spec" : path,
                 absl::StrCat("expected a map (", d->name(), "), got ", Shown(node)));
  }
  std::vector<std::string> entries;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) {
      return Error(origin, kv.first, path.empty() ? "spec" : path, "keys must be scalars");
    }
    const std::string& key = kv.first.Scalar();
    std::string key_path = Join(path, key);
    const FieldDescriptor* f = FindField(d, key);
    if (f == nullptr) {
      return Error(origin, kv.first, key_path,
                   absl::StrCat("unknown key (", d->name(), " has no field \"", key, "\")"));
    }
    if (kv.second.IsNull()) return Error(origin, kv.first, key_path, "has no value");
    DINO_ASSIGN_OR_RETURN(std::string value, FieldToJson(f, kv.second, key_path, origin));
    entries.push_back(absl::StrCat(JsonQuote(f->name()), ":", value));
  }
  return absl::StrCat("{", absl::StrJoin(entries, ","), "}");
}

// The key under which `node` already holds field `f` (by proto or JSON name), else `fallback`.
std::string ExistingKey(const YAML::Node& node, const Descriptor* d, const FieldDescriptor* f,
                        const std::string& fallback) {
  for (const auto& kv : node) {
    if (kv.first.IsScalar() && FindField(d, kv.first.Scalar()) == f) return kv.first.Scalar();
  }
  return fallback;
}

// Sets `value` at `parts[i..]` inside the map `node`, guided by the descriptor `d`.
absl::Status ApplyOverride(YAML::Node node, const Descriptor* d,
                           const std::vector<std::string>& parts, size_t i, const std::string& path,
                           const YAML::Node& value, const Origin& origin) {
  const std::string& name = parts[i];
  std::string key_path = Join(path, name);
  const FieldDescriptor* f = FindField(d, name);
  if (f == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(origin.source, ": ", key_path, ": unknown key (",
                                                   d->name(), " has no field \"", name, "\")"));
  }
  const std::string key = ExistingKey(node, d, f, name);
  if (f->is_map()) {
    if (i + 1 == parts.size()) {
      DINO_RETURN_IF_ERROR(FieldToJson(f, value, key_path, origin).status());
      node[key] = value;
      return absl::OkStatus();
    }
    std::vector<std::string> rest(parts.begin() + i + 1, parts.end());
    std::string map_key = absl::StrJoin(rest, ".");
    YAML::Node map = node[key];
    if (map.IsDefined() && !map.IsNull() && !map.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin.source, ": ", key_path, ": the file sets it to a non-map value"));
    }
    const FieldDescriptor* value_field = f->message_type()->FindFieldByName("value");
    DINO_RETURN_IF_ERROR(
        ValueToJson(value_field, value, absl::StrCat(key_path, ".", map_key), origin).status());
    map[map_key] = value;
    return absl::OkStatus();
  }
  if (i + 1 == parts.size()) {
    DINO_RETURN_IF_ERROR(FieldToJson(f, value, key_path, origin).status());
    node[key] = value;
    return absl::OkStatus();
  }
  if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin.source, ": ", key_path, ": is a ", f->type_name(), ", not a message"));
  }
  YAML::Node child = node[key];
  if (!child.IsDefined() || child.IsNull()) {
    child = YAML::Node(YAML::NodeType::Map);
    node[key] = child;
  } else if (!child.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin.source, ": ", key_path, ": the file sets it to a non-map value"));
  }
  return ApplyOverride(child, f->message_type(), parts, i + 1, key_path, value, origin);
}

absl::Status ApplyOverrideString(YAML::Node root, const std::string& assignment) {
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set ", assignment, ": expected key.path=value"));
  }
  std::string key_path = assignment.substr(0, eq);
  Origin origin{absl::StrCat("--set ", key_path), /*has_lines=*/false};
  std::vector<std::string> parts = absl::StrSplit(key_path, '.');
  for (const std::string& p : parts) {
    if (p.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(origin.source, ": empty key in the path"));
    }
  }
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin.source, ": ", e.msg));
  }
  return ApplyOverride(root, dino::v1::JobSpec::descriptor(), parts, 0, "", value, origin);
}

// JobSpec's strings are proto3 `string` fields, which must be UTF-8 (protobuf would refuse them
// later with a bare parse error), so the text is checked up front: "spec.yaml:3:7: not valid
// UTF-8 (byte 0xFF at offset 41)".
absl::Status CheckUtf8(absl::string_view text, absl::string_view source, bool has_lines) {
  const std::optional<size_t> bad = FindInvalidUtf8(text);
  if (!bad.has_value()) return absl::OkStatus();
  std::string where(source);
  if (has_lines) {
    const absl::string_view before = text.substr(0, *bad);
    const size_t line_start = before.rfind('\n');
    const size_t column = line_start == absl::string_view::npos ? *bad + 1 : *bad - line_start;
    absl::StrAppend(&where, ":", std::count(before.begin(), before.end(), '\n') + 1, ":", column);
  }
  return absl::InvalidArgumentError(absl::StrCat(where, ": not valid UTF-8 (",
                                                 DescribeInvalidUtf8(text, *bad),
                                                 "); spec files must be UTF-8"));
}

}  // namespace

absl::StatusOr<dino::v1::JobSpec> ParseJobSpec(absl::string_view text,
                                               absl::string_view source_name,
                                               const std::vector<std::string>& overrides) {
  Origin origin{std::string(source_name)};
  DINO_RETURN_IF_ERROR(CheckUtf8(text, source_name, /*has_lines=*/true));
  for (const std::string& assignment : overrides) {
    const std::string key = assignment.substr(0, assignment.find('='));
    DINO_RETURN_IF_ERROR(CheckUtf8(
        assignment, FindInvalidUtf8(key).has_value() ? "--set" : absl::StrCat("--set ", key),
        /*has_lines=*/false));
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ":", e.mark.line + 1, ": not valid YAML or JSON: ", e.msg));
  }
  if (!root.IsDefined() || root.IsNull()) {
    root = YAML::Node(YAML::NodeType::Map);
    if (overrides.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(source_name, ": the spec is empty"));
    }
  }
  if (!root.IsMap()) {
    return Error(origin, root, "spec",
                 absl::StrCat("expected a map of JobSpec fields, got ", Shown(root)));
  }
  for (const std::string& assignment : overrides) {
    DINO_RETURN_IF_ERROR(ApplyOverrideString(root, assignment));
  }
  DINO_ASSIGN_OR_RETURN(std::string json,
                        MessageToJson(dino::v1::JobSpec::descriptor(), root, "", origin));
  dino::v1::JobSpec spec;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(json, &spec, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ": ", std::string(status.message())));
  }
  return spec;
}

absl::StatusOr<dino::v1::JobSpec> LoadJobSpecFile(FileSystem* fs, const std::string& path,
                                                  const std::vector<std::string>& overrides) {
  DINO_ASSIGN_OR_RETURN(std::string text, fs->ReadFile(path));
  return ParseJobSpec(text, path, overrides);
}

}  // namespace dino::spec
