#!/usr/bin/env python3
"""Container health probe for dinotrain (HEALTHCHECK in deploy/docker/*.Dockerfile).

  healthcheck.py grpc HOST:PORT [SERVICE]   grpc.health.v1.Health/Check answers SERVING
  healthcheck.py http URL                   GET answers 200 (a worker's /metrics)

Exit 0 healthy, 1 unhealthy. Needs only python3-grpcio (Debian), not the generated health stubs:
the request and the answer are encoded by hand (HealthCheckRequest{service} is field 1, a string;
HealthCheckResponse{status} is field 1, a varint, SERVING = 1). Kubernetes does not need this
script: its native gRPC probes call the same service.
"""
import sys
import urllib.request

TIMEOUT_S = 3.0


def encode_request(service):
    data = service.encode()
    if not data:
        return b""
    if len(data) > 127:
        raise ValueError("service name too long for this probe")
    return b"\x0a" + bytes([len(data)]) + data


def decode_status(response):
    # Field 1, wire type 0 (varint); the value fits one byte (UNKNOWN..SERVICE_UNKNOWN = 0..3).
    if len(response) >= 2 and response[0] == 0x08:
        return response[1]
    return 0  # proto3 omits a zero (UNKNOWN) status.


def check_grpc(target, service):
    import grpc  # Imported here so that the http mode works without grpcio.

    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            status = decode_status(check(encode_request(service), timeout=TIMEOUT_S))
        except grpc.RpcError as e:
            print(f"unhealthy: {target}: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    if status != 1:
        print(f"unhealthy: {target} reports status {status} (SERVING is 1)", file=sys.stderr)
        return 1
    return 0


def check_http(url):
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            if response.status == 200:
                return 0
            print(f"unhealthy: {url}: HTTP {response.status}", file=sys.stderr)
    except OSError as e:
        print(f"unhealthy: {url}: {e}", file=sys.stderr)
    return 1


def main(argv):
    if len(argv) >= 3 and argv[1] == "grpc":
        return check_grpc(argv[2], argv[3] if len(argv) > 3 else "")
    if len(argv) == 3 and argv[1] == "http":
        return check_http(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
