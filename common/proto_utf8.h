// Finds the string field that makes serialized protobuf bytes unparseable as proto3 because it
// holds invalid UTF-8, by walking the wire format against the message's descriptor (protobuf's
// own parser only says "failed"). Used by the coordinator's SubmitJob, which receives raw bytes so
// that such a request gets INVALID_ARGUMENT naming the field instead of gRPC's bare UNIMPLEMENTED.
//
// Thread-safety: stateless. Failure: see CheckProtoUtf8.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace google::protobuf {
class Descriptor;
}

namespace dino {

// OK when no string field (at any depth, map keys and values included) of `wire`, read as a
// `descriptor` message, holds invalid UTF-8. Else INVALID_ARGUMENT
//   "<what>.spec.name: not valid UTF-8 (byte 0xFF at offset 0); string fields must be UTF-8".
// Bytes that are not a well-formed wire message at all give INVALID_ARGUMENT
// "<what>: not a valid <Message> message". Unknown field numbers are skipped.
absl::Status CheckProtoUtf8(const google::protobuf::Descriptor* descriptor, absl::string_view wire,
                            absl::string_view what);

}  // namespace dino
