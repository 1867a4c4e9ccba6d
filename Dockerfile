# flashsale: the engine with its embedded Redis (set FLASHSALE_REDIS_URL to use your own,
# FLASHSALE_ORDERS_DSN for PostgreSQL). Debian's own Python 3.11 and redis-server.
#   docker build -t flashsale .        (make image-tour builds it with podman and runs the
#   docker run -p 8080:8080 flashsale   README's tour inside it)
# The layout inside mirrors a checkout after `make install`: /app/.venv and the data dir
# /app/var, so the README's commands run in the container as they are.
FROM debian:bookworm-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv redis-server curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY flashsale ./flashsale
COPY lua ./lua
COPY config ./config
# A build behind a TLS-intercepting proxy can lend its CA bundle as the secret "ca"
# (--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt); without it pip uses its own.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python3 -m venv .venv \
 && .venv/bin/pip install --no-cache-dir . \
 && useradd --create-home flashsale \
 && mkdir var && chown flashsale var

ENV PATH=/app/.venv/bin:$PATH
USER flashsale
VOLUME ["/app/var"]
EXPOSE 8080
CMD ["flashsale", "serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "var"]
