# flashsale: the engine with its embedded Redis (set FLASHSALE_REDIS_URL to use your own).
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY flashsale ./flashsale
COPY lua ./lua
COPY config ./config
RUN pip install --no-cache-dir . && useradd --create-home flashsale \
 && mkdir -p /data && chown flashsale /data

USER flashsale
VOLUME ["/data"]
EXPOSE 8080
CMD ["flashsale", "serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/data"]
