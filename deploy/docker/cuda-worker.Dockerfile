# dinotrain CUDA worker: dino-worker (and dinoctl) linked against the LibTorch 2.x with CUDA and
# NCCL that ships in the official PyTorch image.
#
#   docker build -f deploy/docker/cuda-worker.Dockerfile -t dinotrain-worker:cuda .
#   docker run --gpus 1 dinotrain-worker:cuda --coordinator HOST:50051 --device cuda:0 ...
#
# The PyTorch 2.7+ wheels use the C++11 ABI (checked below), so the C++ dependencies may come from
# Ubuntu. gRPC and Abseil are built from source at the versions Debian 12 ships (1.51.1,
# 20220623), which are the ones the code is written against; Ubuntu 22.04's are older.
# Multi-stage: the runtime stage is the smaller -runtime flavour of the same PyTorch image with
# the worker, the shared libraries built here, and a non-root user.
ARG PYTORCH_TAG=2.7.1-cuda12.6-cudnn9
FROM pytorch/pytorch:${PYTORCH_TAG}-devel AS build
ARG GRPC_VERSION=v1.51.1
ARG ABSL_VERSION=20220623.1
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build git pkg-config ca-certificates libssl-dev zlib1g-dev \
      libsqlite3-dev libcivetweb-dev libyaml-cpp-dev libcli11-dev libjpeg-turbo8-dev libpng-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda); \
sys.exit(0 if torch.compiled_with_cxx11_abi() else 'this LibTorch uses the pre-C++11 ABI')"
# Abseil, then gRPC (with its bundled protobuf) on that Abseil, into /opt/deps.
RUN git clone --depth 1 -b ${ABSL_VERSION} https://github.com/abseil/abseil-cpp /tmp/absl \
 && cmake -S /tmp/absl -B /tmp/absl/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=17 \
      -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_SHARED_LIBS=ON -DCMAKE_INSTALL_PREFIX=/opt/deps \
      -DABSL_PROPAGATE_CXX_STD=ON \
 && cmake --build /tmp/absl/b && cmake --install /tmp/absl/b \
 && git clone --depth 1 -b ${GRPC_VERSION} --recurse-submodules --shallow-submodules \
      https://github.com/grpc/grpc /tmp/grpc \
 && cmake -S /tmp/grpc -B /tmp/grpc/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=17 \
      -DBUILD_SHARED_LIBS=ON -DCMAKE_INSTALL_PREFIX=/opt/deps -DCMAKE_PREFIX_PATH=/opt/deps \
      -DgRPC_INSTALL=ON -DgRPC_BUILD_TESTS=OFF -DgRPC_ABSL_PROVIDER=package \
      -DgRPC_SSL_PROVIDER=package -DgRPC_ZLIB_PROVIDER=package \
 && cmake --build /tmp/grpc/b && cmake --install /tmp/grpc/b \
 && rm -rf /tmp/absl /tmp/grpc
COPY . /src
WORKDIR /src
RUN TORCH_PREFIX=$(python -c 'import torch; print(torch.utils.cmake_prefix_path)') \
 && cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDINO_WITH_CUDA=ON \
      -DDINO_BUILD_TESTS=OFF -DDINO_BUILD_BENCH=OFF \
      -DCMAKE_PREFIX_PATH="${TORCH_PREFIX};/opt/deps" -DCMAKE_CUDA_ARCHITECTURES="80;86;89;90" \
 && cmake --build /build --target dino-worker dinoctl \
 && mkdir -p /out/bin && cp /build/worker/agent/dino-worker /build/client/dinoctl /build/client/dinoctl-export /out/bin/

FROM pytorch/pytorch:${PYTORCH_TAG}-runtime AS worker
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libsqlite3-0 libcivetweb1 libyaml-cpp0.7 libjpeg-turbo8 libpng16-16 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && pip install --no-cache-dir "grpcio==1.51.*" \
 && groupadd --system --gid 10001 dinotrain \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/dinotrain --shell /usr/sbin/nologin dinotrain \
 && mkdir -p /var/lib/dinotrain/worker && chown -R dinotrain:dinotrain /var/lib/dinotrain
COPY --from=build /opt/deps/lib/ /opt/deps/lib/
COPY --from=build /out/bin/ /usr/local/bin/
COPY deploy/docker/healthcheck.py /usr/local/bin/dino-healthcheck
# LibTorch's own libraries (libtorch_cuda, libc10_cuda, NCCL) come from the image's torch package.
RUN echo /opt/deps/lib > /etc/ld.so.conf.d/dino-deps.conf \
 && python -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))" \
      > /etc/ld.so.conf.d/torch.conf \
 && ldconfig
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
