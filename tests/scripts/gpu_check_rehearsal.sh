#!/usr/bin/env bash
# Rehearses scripts/gpu-check on this Debian machine as the GPU machine will see it: without
# Debian's copies of the bundled packages. In a private mount namespace (unshare -m), every file
# that the .gpu-deps/ packages installed on this system (headers, libraries, CMake and pkg-config
# files, protoc, grpc_cpp_plugin, the dataset) is covered: folders by an empty folder, files by
# /dev/null, so a build that reached for one of them fails instead of passing here only. Only
# the runtime libraries that this machine's own tools load (zlib, OpenSSL, SQLite: cmake,
# python3, gcc) stay visible. Then:
#   1. unpacks the bundle with each of gpu-check's three unpackers (dpkg-deb, ar + tar, Python)
#      and checks that they give the same tree;
#   2. runs `scripts/gpu-check --rehearse` (configure and build build-gpu/, stop before the GPU);
#   3. proves the build used the prefix: CMakeCache.txt's paths, compile_commands.json's include
#      flags, ninja's record of every header each object read, ldd and RUNPATH of the programs,
#      and `ctest -L gpu` (every GPU test starts with the prefix's libraries and skips).
#
#   tests/scripts/gpu_check_rehearsal.sh     (root; PYTHON: a CUDA torch's python, as for gpu-check)
#
# DINO_REHEARSAL_FRESH=0 keeps build-gpu/ and the prefix of an earlier rehearsal;
# DINO_REHEARSAL_STEPS="3 4" runs only those steps (default "1 2 3 4").
# Needs root, unshare, dpkg and a bundle from scripts/gpu-bundle-deps. Exits non-zero at the first
# failed check. The build takes 30+ minutes on two cores; DINO_GPU_CHECK_BUDGET_S and
# DINO_GPU_CHECK_BUILD_S default to two hours here. Not part of ctest.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PREFIX=${DINO_GPU_PREFIX:-/tmp/dino-gpu-prefix}
ARCH=x86_64-linux-gnu
export PYTHON=${PYTHON:-/opt/dinotrain/torch-2.11.0-cu130/bin/python}
export DINO_GPU_CHECK_BUDGET_S=${DINO_GPU_CHECK_BUDGET_S:-7200}
export DINO_GPU_CHECK_BUILD_S=${DINO_GPU_CHECK_BUILD_S:-7000}
step() { echo; echo "== rehearsal: $* ($(date +%T))"; }
fail() { echo "rehearsal: FAILED: $*" >&2; exit 1; }

# The system paths to cover: for each bundled package installed here, its files under the roots
# gpu-check's build could reach; a folder that holds nothing but that package's files is covered
# whole. zlib1g, libssl3 and libsqlite3-0's libraries stay (cmake, python3 and gcc load them).
hidden_paths() {
  python3 - "$ROOT/.gpu-deps/MANIFEST" <<'EOF'
import os, subprocess, sys
keep_runtime = {"zlib1g", "libssl3", "libsqlite3-0"}
roots = ("/usr/include/", "/usr/lib/x86_64-linux-gnu/", "/lib/x86_64-linux-gnu/", "/usr/bin/",
         "/usr/share/cmake/", "/usr/share/pkgconfig/", "/usr/share/datasets/", "/usr/src/")
shared = {"/usr/include", "/usr/include/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
          "/lib/x86_64-linux-gnu", "/usr/bin", "/usr/share/cmake", "/usr/share/pkgconfig",
          "/usr/lib/x86_64-linux-gnu/cmake", "/usr/lib/x86_64-linux-gnu/pkgconfig",
          "/usr/share/datasets", "/usr/src", "/usr/share"}
ours, kept = set(), set()
for line in open(sys.argv[1]):
    pkg = line.split()[0]
    try:
        files = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True, check=True).stdout
    except subprocess.CalledProcessError:
        continue  # not installed here: nothing to cover
    for f in files.split("\n"):
        if not f.startswith(roots) or os.path.isdir(f) and not os.path.islink(f):
            continue
        if pkg in keep_runtime and ".so." in f:
            kept.add(os.path.realpath(f))
            continue
        if os.path.lexists(f):
            ours.add(f)
# A bind mount over a symlink covers its target: libssl.so, libz.so and libsqlite3.so stay.
ours = {f for f in ours if os.path.realpath(f) not in kept}
def owned_whole(d):
    for base, dirs, files in os.walk(d):
        for name in files:
            if os.path.join(base, name) not in ours:
                return False
    return True
out = set()
for f in ours:
    unit, d = f, os.path.dirname(f)
    while d not in shared and d != "/" and owned_whole(d):
        unit, d = d, os.path.dirname(d)
    out.add(unit)
# A covered folder covers what is inside it.
for p in sorted(out):
    if not any(p.startswith(q + "/") for q in out):
        print(p)
EOF
}

inside() {
  mount --make-rprivate /
  local empty=/tmp/gpu-check-rehearsal-empty n=0 p
  mkdir -p "$empty"
  # Files first (a symlink such as png.h -> libpng16/png.h is covered through its target), then
  # folders; a symlink to a folder (libpng -> libpng16) is covered with its target.
  local paths
  mapfile -t paths < <(hidden_paths)
  for p in "${paths[@]}"; do
    [ -d "$p" ] || { mount --bind /dev/null "$p"; n=$((n + 1)); }
  done
  for p in "${paths[@]}"; do
    if [ -d "$p" ] && [ ! -L "$p" ]; then mount --bind "$empty" "$p"; n=$((n + 1)); fi
  done
  echo "covered $n system paths of the bundled packages, e.g.:"
  printf '%s\n' "${paths[@]}" | grep -E 'include/(absl|grpcpp|google)$|cmake/grpc$|libgrpc\+\+\.so$|bin/protoc$' | sed 's/^/  /'
  [ ! -s /usr/include/absl/base/config.h ] && [ ! -s /usr/lib/$ARCH/libgrpc++.so ] \
    && [ ! -x /usr/bin/grpc_cpp_plugin ] || fail "the system's copies are still visible"

  steps=${DINO_REHEARSAL_STEPS:-1 2 3 4}
  if [[ " $steps " == *" 1 "* ]]; then
  step "1. the three unpackers give the same tree"
  local fns
  fns=$(sed -n '/^have()/p; /^unpack_deb()/,/^}/p' scripts/gpu-check)
  for how in dpkg ar python; do
    rm -rf "/tmp/gpu-check-unpack-$how"; mkdir -p "/tmp/gpu-check-unpack-$how"
    (
      [ $how = dpkg ] || mount --bind /dev/null /usr/bin/dpkg-deb
      [ $how != python ] || mount --bind /dev/null /usr/bin/ar
      hash -r
      PY=python3
      eval "$fns"
      for f in .gpu-deps/*.deb; do unpack_deb "$f" "/tmp/gpu-check-unpack-$how"; done
    )
    # Mounts outlive the subshell: uncover dpkg-deb and ar again.
    while umount /usr/bin/dpkg-deb 2>/dev/null; do :; done
    while umount /usr/bin/ar 2>/dev/null; do :; done
    echo "  $how: $(find "/tmp/gpu-check-unpack-$how" | wc -l) entries"
  done
  diff -r --no-dereference /tmp/gpu-check-unpack-dpkg /tmp/gpu-check-unpack-ar >/dev/null \
    && diff -r --no-dereference /tmp/gpu-check-unpack-dpkg /tmp/gpu-check-unpack-python >/dev/null \
    || fail "the unpackers disagree"
  rm -rf /tmp/gpu-check-unpack-{dpkg,ar,python}
  [ -x /usr/bin/ar ] && [ -x /usr/bin/dpkg-deb ] || fail "ar or dpkg-deb still covered"
  fi
  if [[ " $steps " == *" 2 "* ]]; then

  # DINO_REHEARSAL_FRESH=0 resumes an interrupted rehearsal: build-gpu/ and the prefix stay (the
  # objects already there were compiled inside this same covering).
  if [ "${DINO_REHEARSAL_FRESH:-1}" = 1 ]; then
    step "2. scripts/gpu-check --rehearse (build-gpu/ from scratch)"
    rm -rf build-gpu "$PREFIX"
  else
    step "2. scripts/gpu-check --rehearse (resuming build-gpu/)"
  fi
  CCACHE_DISABLE=1 nice -n 10 bash scripts/gpu-check --rehearse || fail "gpu-check --rehearse exited $?"
  fi
  if [[ " $steps " == *" 3 "* ]]; then

  step "3. the build used the prefix"
  local pkgs='absl|gRPC|grpc|GRPC|Protobuf|protobuf|PROTOC|c-ares|re2|OPENSSL|ZLIB|JPEG|PNG|SQLite3|CIVETWEB|CLI11|yaml-cpp|GTest|benchmark|GLOO'
  echo "CMakeCache.txt entries of the bundled packages:"
  local entries outside
  entries=$(grep -E "^[^/#][^:]*:(PATH|FILEPATH)=" build-gpu/CMakeCache.txt | grep -E "^[^:]*($pkgs)")
  sed 's/^/  /' <<<"$entries"
  outside=$(grep -vE "=($PREFIX/|.*-NOTFOUND$)" <<<"$entries" || true)
  [ -z "$outside" ] || fail "CMakeCache.txt names paths outside the prefix: $outside"

  python3 - "$PREFIX" <<'EOF' || fail "compile_commands.json"
import json, re, sys
prefix = sys.argv[1]
cmds = json.load(open("build-gpu/compile_commands.json"))
with_prefix = [c for c in cmds if re.search(r"(-isystem ?|-I)" + re.escape(prefix), c["command"])]
system = [c["file"] for c in cmds if re.search(r"(-isystem ?|-I)/usr/include(\s|$)", c["command"])]
print(f"compile_commands.json: {len(with_prefix)} of {len(cmds)} commands search {prefix}; "
      f"{len(system)} name /usr/include")
sys.exit(1 if system or not with_prefix else 0)
EOF

  # Every header that every compiled object actually read, as ninja recorded it.
  local deps bundled_sys
  deps=$(ninja -C build-gpu -t deps | grep -E '^ +/' | sort -u)
  echo "headers read: $(grep -c "^ *$PREFIX/" <<<"$deps") from the prefix, e.g.:"
  grep -E "$PREFIX/usr/include/(grpcpp/grpcpp.h|absl/status/status.h|google/protobuf/message.h|openssl/opensslconf.h|jconfig.h|gloo/algorithm.h)" <<<"$deps" | sed 's/^ */  /'
  bundled_sys=$(grep -E '^ */usr/include/(absl|grpc|grpcpp|grpc\+\+|google|gtest|gmock|benchmark|yaml-cpp|CLI|re2|openssl|gloo|ares|sqlite3|civetweb|jpeglib|jconfig|jmorecfg|jerror|png|zlib|zconf|x86_64-linux-gnu/(openssl|jconfig))' <<<"$deps" || true)
  [ -z "$bundled_sys" ] || fail "objects read the system's headers: $bundled_sys"

  local bin
  for bin in server/dino-coordinator worker/agent/dino-worker client/dinoctl; do
    bin=$(find build-gpu -type f -executable -name "$(basename "$bin")" | head -1)
    echo "$bin: RUNPATH $(readelf -d "$bin" | sed -n 's/.*R\(UN\)\?PATH.*\[\(.*\)\]/\2/p')"
    ldd "$bin" | grep -E 'grpc|protobuf|absl_(base|status|synchronization)\.|libssl|libz\.|sqlite|civetweb|yaml|re2|cares' | sed 's/^/  /'
    if ldd "$bin" | grep -E 'grpc|protobuf|absl|re2|cares|yaml|civetweb|benchmark' | grep -v "=> $PREFIX/"; then
      fail "$bin resolves a bundled library outside the prefix"
    fi
    if ldd "$bin" | grep 'not found'; then fail "$bin has unresolved libraries"; fi
  done
  "$(find build-gpu -type f -executable -name dino-coordinator | head -1)" --help >/dev/null 2>&1 \
    || "$(find build-gpu -type f -executable -name dino-coordinator | head -1)" --version >/dev/null 2>&1 \
    || echo "note: dino-coordinator --help exited non-zero"

  fi
  if [[ " $steps " == *" 4 "* ]]; then
  step "4. ctest -L gpu without a device (each GPU test starts and skips)"
  (cd build-gpu && DINO_FASHION_MNIST_DIR=$PREFIX/usr/share/datasets/fashion-mnist \
     ctest -L gpu -j 2 2>&1 | tail -8)
  fi
}

if [ "${1:-}" = --inside ]; then
  inside
  step "done: every check passed"
  exit 0
fi
[ "$(id -u)" = 0 ] || fail "needs root (unshare -m and bind mounts)"
[ -f .gpu-deps/MANIFEST ] || fail "no .gpu-deps/: run scripts/gpu-bundle-deps"
export LD_LIBRARY_PATH=$PREFIX/usr/lib/$ARCH
exec unshare -m bash "$0" --inside
