# voice-gateway: the same install as README.md's quickstart, in one image.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    VGW_DATABASE_URL=sqlite:////data/voice-gateway.db \
    VGW_LOGS_DIR=/data/logs

RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng sox \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY connectors ./connectors
COPY scenarios ./scenarios
RUN pip install --no-cache-dir -e . && mkdir -p /data

# HTTP API, SIP over UDP and TCP, and the default RTP range.
EXPOSE 8080 5060/udp 5060/tcp 10000-10999/udp
ENV VGW_RTP_PORT_MIN=10000 VGW_RTP_PORT_MAX=10999
VOLUME ["/data"]
CMD ["vgw", "serve"]
