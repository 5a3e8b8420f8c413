# dinotrain CPU images on Debian 12: dino-coordinator, dino-worker and dinoctl.
#
# Multi-stage: `build` installs exactly the packages of scripts/install-deps and compiles the three
# binaries; `runtime` carries only them and their shared libraries (LibTorch 1.13 on OpenBLAS,
# gRPC 1.51, Abseil, SQLite, civetweb, cpp-httplib, yaml-cpp, libjpeg-turbo, libpng, OpenSSL), runs as the
# non-root user `dinotrain` (uid 10001) and keeps its data under /var/lib/dinotrain. Two final
# targets differ only in entrypoint, ports and HEALTHCHECK:
#   docker build -f deploy/docker/cpu.Dockerfile --target coordinator -t dinotrain-coordinator:cpu .
#   docker build -f deploy/docker/cpu.Dockerfile --target worker      -t dinotrain-worker:cpu .
# Both contain dinoctl (`docker compose exec coordinator dinoctl list`).
ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
COPY scripts/install-deps /src/scripts/install-deps
RUN bash /src/scripts/install-deps && rm -rf /var/lib/apt/lists/*
COPY . /src
WORKDIR /src
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DDINO_BUILD_TESTS=OFF -DDINO_BUILD_BENCH=OFF \
 && cmake --build /build -j"$(nproc)" --target dino-coordinator dino-worker dinoctl \
 && mkdir -p /out/bin \
 && cp /build/server/dino-coordinator /build/worker/agent/dino-worker /build/client/dinoctl /build/client/dinoctl-export /out/bin/ \
 && strip --strip-unneeded /out/bin/*

FROM ${DEBIAN_IMAGE} AS runtime
# The runtime halves of the -dev packages in scripts/install-deps (objdump -p: NEEDED), OpenBLAS
# made the active BLAS as install-deps does, python3-grpcio for healthcheck.py and Chart.js for the
# web console.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libtorch1.13 libopenblas0-openmp libgloo0 libgrpc++1.51 libgrpc29 libprotobuf32 \
      libabsl20220623 libsqlite3-0 libcivetweb1 libcpp-httplib0.11 libyaml-cpp0.7 \
      libjpeg62-turbo libpng16-16 libssl3 ca-certificates python3-grpcio libjs-chart.js \
 && arch="$(uname -m)-linux-gnu" \
 && update-alternatives --set "libblas.so.3-${arch}" "/usr/lib/${arch}/openblas-openmp/libblas.so.3" \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dinotrain \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/dinotrain --shell /usr/sbin/nologin dinotrain \
 && mkdir -p /var/lib/dinotrain/coordinator /var/lib/dinotrain/worker \
 && chown -R dinotrain:dinotrain /var/lib/dinotrain
COPY --from=build /out/bin/ /usr/local/bin/
COPY deploy/docker/healthcheck.py /usr/local/bin/dino-healthcheck
COPY examples /usr/share/dinotrain/examples
# The web console's static files, where an installed dino-coordinator looks for them (beside bin/).
COPY server/console /usr/local/share/dinotrain/console
USER 10001:10001
WORKDIR /var/lib/dinotrain
# Idle OpenMP threads sleep instead of spinning: several containers share the host's cores.
ENV OMP_WAIT_POLICY=PASSIVE

FROM runtime AS worker
EXPOSE 29500 9465
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["dino-healthcheck", "http", "http://127.0.0.1:9465/metrics"]
ENTRYPOINT ["dino-worker"]
CMD ["--coordinator", "coordinator:50051", "--device", "cpu", "--rendezvous-port", "29500", \
     "--metrics-port", "9465", "--work-dir", "/var/lib/dinotrain/worker"]

# Last stage: what a plain `docker build` (no --target) produces.
FROM runtime AS coordinator
EXPOSE 50051 9464 8080
VOLUME ["/var/lib/dinotrain/coordinator"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["dino-healthcheck", "grpc", "127.0.0.1:50051"]
ENTRYPOINT ["dino-coordinator"]
CMD ["--listen", "0.0.0.0:50051", "--data-dir", "/var/lib/dinotrain/coordinator", \
     "--metrics-port", "9464"]
