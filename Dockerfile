# The encfs sidecar image.  Build: docker build -t encfs .   (or, without Docker Hub: make image)
# The runtime stage holds exactly what `make install PREFIX=/usr` installs (the file set the VM
# tests boot with), the shared libraries those tools link, mount/umount/losetup (util-linux),
# fusermount3 (fuse3: the blob mounted lazily through FUSE), the CA certificates, and nothing of
# the build stage.  .dockerignore keeps build directories, node_modules, the VM cache and .git out
# of the context.

FROM debian:12 AS build
# a C compiler, make, pkg-config and the libraries' headers: what `make all` needs
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc libc6-dev make pkg-config libcurl4-openssl-dev libsodium-dev libssl-dev \
        libdevmapper-dev libblkid-dev libargon2-dev libfuse3-dev libjsmn-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" all && make install PREFIX=/usr DESTDIR=/out

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libcurl4 libsodium23 libssl3 libdevmapper1.02.1 libblkid1 libargon2-1 libfuse3-3 \
        util-linux mount fuse3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /
RUN ln -s /usr/bin/encfs.sh /encfs.sh
ENTRYPOINT ["/encfs.sh"]
