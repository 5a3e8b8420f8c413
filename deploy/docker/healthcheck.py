#!/usr/bin/env python3
"""Container health probe for dinotrain (HEALTHCHECK in deploy/docker/*.Dockerfile).

  healthcheck.py grpc HOST:PORT [SERVICE] [--tls-ca F [--tls-cert F --tls-key F]]
                                            grpc.health.v1.Health/Check answers SERVING
  healthcheck.py http URL                   GET answers 200 (a worker's /metrics)

With --tls-ca the gRPC check speaks TLS (the coordinator's --tls-cert), verifying the server with
that CA; --tls-cert/--tls-key add a client certificate for a coordinator with --tls-client-ca.

Exit 0 healthy, 1 unhealthy. Needs only python3-grpcio (Debian), not the generated health stubs:
the request and the answer are encoded by hand (HealthCheckRequest{service} is field 1, a string;
HealthCheckResponse{status} is field 1, a varint, SERVING = 1). Kubernetes' native gRPC probes call
the same service in plaintext; with TLS, use this script as an exec probe.
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


def channel_for(grpc, target, tls):
    if not tls.get("--tls-ca"):
        return grpc.insecure_channel(target)

    def read(flag):
        path = tls.get(flag)
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read()

    credentials = grpc.ssl_channel_credentials(root_certificates=read("--tls-ca"),
                                               private_key=read("--tls-key"),
                                               certificate_chain=read("--tls-cert"))
    return grpc.secure_channel(target, credentials)


def check_grpc(target, service, tls):
    import grpc  # Imported here so that the http mode works without grpcio.

    with channel_for(grpc, target, tls) as channel:
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


def split_flags(args):
    positional, flags = [], {}
    it = iter(args)
    for arg in it:
        if arg in ("--tls-ca", "--tls-cert", "--tls-key"):
            flags[arg] = next(it, "")
        else:
            positional.append(arg)
    return positional, flags


def main(argv):
    if len(argv) >= 3 and argv[1] == "grpc":
        positional, tls = split_flags(argv[2:])
        if len(positional) not in (1, 2) or (tls and not tls.get("--tls-ca")):
            print(__doc__, file=sys.stderr)
            return 2
        return check_grpc(positional[0], positional[1] if len(positional) == 2 else "", tls)
    if len(argv) == 3 and argv[1] == "http":
        return check_http(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
