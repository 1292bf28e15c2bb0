# zpipe images: one image holds the ventilator, the worker, the sink and the
# zpipe command; docker-compose.yml picks the binary per service.
#   docker build -t zpipe .
# The build stage compiles and installs to /usr/local; the runtime stage
# carries only the shared libraries the binaries and plugins link against,
# and the two the binaries load on demand (see below).

FROM debian:bookworm-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libzmq3-dev libczmq-dev \
        libprotobuf-c-dev protobuf-c-compiler libsodium-dev zlib1g-dev \
        libmicrohttpd-dev python3-dev libpython3.11-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads, so edits to tests or docs elsewhere keep the
# compile layer cached (.dockerignore keeps build trees and .git out too).
COPY CMakeLists.txt zpipe.pc.in ./
COPY proto proto
COPY include include
COPY common common
COPY ventilator ventilator
COPY workers workers
COPY sink sink
COPY zpipe zpipe
COPY plugins plugins
COPY bench bench
COPY docs/protocol.md docs/plugins.md docs/python.md docs/
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
        -DZPIPE_WERROR=ON \
 && cmake --build /build -j"$(nproc)" \
 && cmake --install /build --prefix /usr/local --strip

FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
# libczmq4 (certificates: zpipe keygen, --curve-secret, --curve-allow) and
# libmicrohttpd12 (--metrics, the sink's web view) are not linked but loaded
# when those features are used (common/zp_dyn.h): nothing checks for them
# at start, so keep them here.
# zlib1g (the gzip plugin) and libstdc++6 (topwords, in C++) are in every
# Debian image already. python3 and libpython3.11: the python plugin embeds
# the interpreter and its standard library; jobs' modules come through its
# path setting (the /plugins folder, say) or an image built FROM this one.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libzmq5 libczmq4 libprotobuf-c1 libsodium23 libmicrohttpd12 \
        python3 libpython3.11 \
 && rm -rf /var/lib/apt/lists/*
# A fixed uid, so volumes and bind-mounted plugin folders can be prepared
# for it on the host (chown 10001).
RUN groupadd --system --gid 10001 zpipe \
 && useradd --system --uid 10001 --gid zpipe --home-dir /var/lib/zpipe \
        --shell /usr/sbin/nologin zpipe \
 && mkdir -p /var/lib/zpipe/spool /var/lib/zpipe-ventilator /plugins \
    /etc/zpipe/keys \
 && chown -R zpipe:zpipe /var/lib/zpipe /var/lib/zpipe-ventilator /etc/zpipe/keys
COPY --from=build /usr/local/ /usr/local/
COPY compose/entrypoint.sh /usr/local/bin/zpipe-entrypoint
# /plugins first: a .so dropped there wins over a shipped one of that name.
ENV ZPIPE_PLUGIN_PATH=/plugins:/usr/local/lib/zpipe/plugins
USER zpipe
WORKDIR /var/lib/zpipe
ENTRYPOINT ["zpipe-entrypoint"]
CMD ["zpipe", "help"]
