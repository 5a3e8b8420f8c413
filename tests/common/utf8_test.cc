// FindInvalidUtf8 (common/utf8.h) against RFC 3629's edge cases.
#include "common/utf8.h"

#include <optional>
#include <string>

#include "gtest/gtest.h"

namespace dino {
namespace {

TEST(Utf8Test, AcceptsValidTextOfEveryLength) {
  for (const std::string& text :
       {std::string(), std::string("ascii\0with nul", 14), std::string("caf\xc3\xa9"),
        std::string("\xe2\x82\xac"), std::string("\xf0\x9f\xa6\x95"), std::string("\xc2\x80"),
        std::string("\xdf\xbf"), std::string("\xe0\xa0\x80"), std::string("\xed\x9f\xbf"),
        std::string("\xee\x80\x80"), std::string("\xef\xbf\xbf"), std::string("\xf0\x90\x80\x80"),
        std::string("\xf4\x8f\xbf\xbf")}) {
    EXPECT_EQ(FindInvalidUtf8(text), std::nullopt) << text;
  }
}

TEST(Utf8Test, FindsTheFirstInvalidByte) {
  struct Case {
    std::string text;
    size_t offset;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"\x80", 0},              // A lone continuation byte.
           {"ab\xff", 2},            // Never valid.
           {"\xc0\xaf", 0},          // Overlong 2-byte form of '/'.
           {"\xc1\xbf", 0},          // Overlong.
           {"\xe0\x80\xaf", 0},      // Overlong 3-byte form.
           {"\xed\xa0\x80", 0},      // UTF-16 surrogate U+D800.
           {"\xf0\x80\x80\xaf", 0},  // Overlong 4-byte form.
           {"\xf4\x90\x80\x80", 0},  // Above U+10FFFF.
           {"\xf5\x80\x80\x80", 0},  // Above U+10FFFF.
           {"ok\xe2\x82", 2},        // Truncated at the end.
           {"\xe2\x28\xa1", 0},      // Bad second byte.
           {"\xf0\x9f\xa6\x28", 0},  // Bad fourth byte.
           {"\xc3\xa9\xc3", 2},      // Valid, then truncated.
       }) {
    EXPECT_EQ(FindInvalidUtf8(c.text), std::optional<size_t>(c.offset)) << c.text;
  }
  EXPECT_EQ(DescribeInvalidUtf8("ab\xff", 2), "byte 0xFF at offset 2");
}

}  // namespace
}  // namespace dino
