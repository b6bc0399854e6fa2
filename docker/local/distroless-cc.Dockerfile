# A local stand-in for gcr.io/distroless/cc-debian12:nonroot, made from
# Debian's packages where no registry is reachable (scripts/docker-base):
# glibc, libgcc, libstdc++, CA certificates, time zones and a nonroot user
# (65532), nothing else: no shell, no package manager.
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE} AS pick
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*
RUN set -eu; mkdir -p /rootfs/etc /rootfs/tmp /rootfs/home/nonroot /rootfs/usr/share \
        /rootfs/usr/bin /rootfs/usr/lib /rootfs/usr/lib64 /rootfs/usr/sbin; \
    chmod 1777 /rootfs/tmp; chown 65532:65532 /rootfs/home/nonroot; \
    for link in /bin /lib /lib64 /sbin; do if [ -L "$link" ]; then cp -a "$link" "/rootfs$link"; fi; done; \
    for pkg in libc6 libgcc-s1 libstdc++6; do \
        dpkg -L "$pkg" | while read -r path; do \
            if [ -f "$path" ] || [ -L "$path" ]; then \
                case "$path" in /usr/share/*|/usr/lib/x86_64-linux-gnu/gconv/*|/usr/libexec/*|*/audit/*) continue ;; esac; \
                mkdir -p "/rootfs$(dirname "$path")"; cp -a "$path" "/rootfs$path"; \
            fi; \
        done; \
    done; \
    cp -a /etc/ssl /rootfs/etc/ssl; cp -a /usr/share/zoneinfo /rootfs/usr/share/zoneinfo; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /rootfs/etc/passwd; \
    printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > /rootfs/etc/group; \
    printf 'hosts: files dns\n' > /rootfs/etc/nsswitch.conf

FROM scratch
COPY --from=pick /rootfs /
USER 65532:65532
WORKDIR /home/nonroot
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
