# The encfs sidecar image.  Build: docker build -t encfs .
# The runtime stage holds exactly what `make install` installs (the same file set the VM tests boot
# with), the shared libraries those tools link, util-linux and CA certificates.

FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config libcurl4-openssl-dev libsodium-dev libssl-dev \
        libdevmapper-dev libblkid-dev libargon2-dev libfuse3-dev libjsmn-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" all && make install PREFIX=/usr DESTDIR=/out

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libcurl4 libsodium23 libssl3 libdevmapper1.02.1 libblkid1 libargon2-1 libfuse3-3 \
        util-linux ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /
RUN ln -s /usr/bin/encfs.sh /encfs.sh
ENTRYPOINT ["/encfs.sh"]
