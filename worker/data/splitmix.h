// SplitMix64: the 64-bit finaliser of Steele, Lea and Flood's SplitMix generator, used to derive
// independent seeds from (seed, epoch, rank, step) or (seed, index). A pure function; one copy for
// the data library (two private copies collided in its unity build).
#pragma once

#include <cstdint>

namespace dino::data {

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace dino::data
