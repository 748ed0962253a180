# lockservice container image.
#
#   docker build -t lockservice .
#   docker run --rm -p 8080:8080 -e LOCKSERVICE_REDIS_URL=redis://redis-host:6379 lockservice
#
# Two stages on debian:bookworm-slim: the first builds with the project's
# Makefile, the second carries the two binaries and their runtime libraries
# only. The process runs as an unprivileged user (uid 10001) and listens on
# 0.0.0.0:8080. Every flag has a LOCKSERVICE_* environment variable (see
# `lockservice --help`); the HEALTHCHECK uses the binary's own --healthcheck
# mode (GET /healthz on the --listen address), so the image needs no curl.
# The same image runs the demo driver: `docker run --rm lockservice
# oversell-demo --url http://host:8080`.

FROM debian:bookworm-slim AS build
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        build-essential pkg-config \
        libmicrohttpd-dev libjansson-dev libhiredis-dev libcurl4-openssl-dev; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN set -eux; \
    make all; \
    make install DESTDIR=/out PREFIX=/usr/local; \
    strip --strip-unneeded /out/usr/local/bin/lockservice /out/usr/local/bin/oversell-demo; \
    /out/usr/local/bin/lockservice --version

FROM debian:bookworm-slim
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        libmicrohttpd12 libjansson4 libhiredis0.14 libcurl4; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 lockservice; \
    useradd --system --uid 10001 --gid lockservice --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin lockservice
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
RUN lockservice --version
USER 10001:10001
ENV LOCKSERVICE_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["lockservice", "--healthcheck"]
STOPSIGNAL SIGTERM
CMD ["lockservice"]
