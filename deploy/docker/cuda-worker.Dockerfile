# dinotrain CUDA worker on Debian 12: dino-worker (and dinoctl) linked against the pinned CUDA
# LibTorch of scripts/install-torch-cuda (PyPI's torch 2.11.0 for CUDA 13.0 with its nvidia-*
# wheels: CUDA runtime, cuBLAS, cuDNN, NCCL) and Debian 12's gRPC 1.51, Protobuf 3.21 and Abseil
# 20220623: the combination that `make test-cuda` and scripts/gpu-check build and test.
#
#   docker build -f deploy/docker/cuda-worker.Dockerfile -t dinotrain-worker:cuda .
#   docker run --gpus 1 dinotrain-worker:cuda --coordinator HOST:50051 --device cuda:0 ...
#
# build: the Debian packages of the CUDA tree without LibTorch (as scripts/gpu-bundle-deps lists
# them; Gloo's headers from libgloo-dev, nothing else of Gloo), NVIDIA's CUDA 13.0 compiler and
# library headers from its Debian 12 repository (Torch's CMake package needs nvcc and the CUDA
# libraries' targets; nothing here compiles device code, so TORCH_CUDA_ARCH_LIST stays at the
# top-level default), and torch from scripts/install-torch-cuda, whose last line is the torch
# package folder that goes on CMAKE_PREFIX_PATH. The top-level CMakeLists.txt finds Protobuf and
# gRPC before Torch and hides the wheel's bundled protobuf headers.
# worker: Debian 12 slim with the runtime halves of those packages, the torch environment (LibTorch
# and the CUDA libraries it loads; the driver comes from the host through the NVIDIA container
# toolkit), and the non-root user dinotrain (uid 10001).
ARG DEBIAN_IMAGE=debian:bookworm-slim
ARG CUDA_REPO=https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64
# NVIDIA's package suffix for CUDA 13.0, the CUDA of the torch 2.11.0 wheel.
ARG CUDA_PKG=13-0

FROM ${DEBIAN_IMAGE} AS build
ARG CUDA_REPO
ARG CUDA_PKG
ENV DEBIAN_FRONTEND=noninteractive
ADD ${CUDA_REPO}/cuda-keyring_1.1-1_all.deb /tmp/cuda-keyring.deb
RUN dpkg -i /tmp/cuda-keyring.deb && rm /tmp/cuda-keyring.deb \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build lld pkg-config python3-venv ca-certificates \
      libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libabsl-dev \
      libgloo-dev libsqlite3-dev libcivetweb-dev libcpp-httplib-dev libyaml-cpp-dev libcli11-dev \
      libjpeg62-turbo-dev libpng-dev zlib1g-dev libssl-dev \
      cuda-minimal-build-${CUDA_PKG} cuda-libraries-dev-${CUDA_PKG} cuda-nvtx-${CUDA_PKG} \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/local/cuda/bin:${PATH}
# torch==2.11.0 (CUDA 13.0) into /opt/dinotrain/torch-2.11.0-cu130; its last line of output, the
# torch package folder, is kept for CMAKE_PREFIX_PATH. The wheel cache goes with this layer.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY scripts/install-torch-cuda /src/scripts/install-torch-cuda
RUN mkdir -p /opt/dinotrain \
 && DINO_WHEEL_CACHE=/tmp/wheels bash /src/scripts/install-torch-cuda | tail -n 1 > /opt/dinotrain/torch-dir \
 && test -f "$(cat /opt/dinotrain/torch-dir)/share/cmake/Torch/TorchConfig.cmake" \
 && rm -rf /tmp/wheels /root/.cache/pip \
 && echo "torch package folder: $(cat /opt/dinotrain/torch-dir)"
COPY . /src
WORKDIR /src
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDINO_WITH_CUDA=ON \
      -DDINO_BUILD_TESTS=OFF -DDINO_BUILD_BENCH=OFF \
      -DCMAKE_PREFIX_PATH="$(cat /opt/dinotrain/torch-dir)" \
 && cmake --build /build -j"$(nproc)" --target dino-worker dinoctl \
 && mkdir -p /out/bin \
 && cp /build/worker/agent/dino-worker /build/client/dinoctl /build/client/dinoctl-export /out/bin/ \
 && strip --strip-unneeded /out/bin/*

FROM ${DEBIAN_IMAGE} AS worker
ENV DEBIAN_FRONTEND=noninteractive
# The runtime halves of the build's -dev packages (objdump -p: NEEDED); python3 for the torch
# environment and healthcheck.py.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libsqlite3-0 libcivetweb1 \
      libyaml-cpp0.7 libjpeg62-turbo libpng16-16 libssl3 python3 python3-grpcio ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dinotrain \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/dinotrain --shell /usr/sbin/nologin dinotrain \
 && mkdir -p /var/lib/dinotrain/worker && chown -R dinotrain:dinotrain /var/lib/dinotrain
# The same path as in the build stage: the binaries' RUNPATH names its torch/lib.
COPY --from=build /opt/dinotrain/ /opt/dinotrain/
COPY --from=build /out/bin/ /usr/local/bin/
COPY deploy/docker/healthcheck.py /usr/local/bin/dino-healthcheck
# LibTorch's libraries and the nvidia-* wheels' (CUDA runtime, cuBLAS, cuDNN, NCCL, ...) for the
# dynamic loader, whatever RUNPATH a program or library carries; then every library the worker
# needs must resolve (libcuda.so.1 is the host driver's, mounted when the container starts).
RUN torch_dir=$(cat /opt/dinotrain/torch-dir) \
 && { echo "$torch_dir/lib"; find "$torch_dir/../nvidia" -mindepth 2 -maxdepth 3 -type d -name lib; } \
      > /etc/ld.so.conf.d/dinotrain-torch.conf \
 && ldconfig \
 && if ldd /usr/local/bin/dino-worker | grep 'not found' | grep -v 'libcuda\.so'; then exit 1; fi
# What the NVIDIA container toolkit mounts into the container: the CUDA driver and nvidia-smi.
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
WORKDIR /var/lib/dinotrain
# NCCL: see deploy/k8s/README.md ("NCCL environment") for the settings a cluster may need.
ENV NCCL_DEBUG=WARN
EXPOSE 29500 9465
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["dino-healthcheck", "http", "http://127.0.0.1:9465/metrics"]
ENTRYPOINT ["dino-worker"]
CMD ["--coordinator", "coordinator:50051", "--device", "cuda:0", "--rendezvous-port", "29500", \
     "--metrics-port", "9465", "--work-dir", "/var/lib/dinotrain/worker"]
