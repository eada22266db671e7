# The app's container image: one static binary on an empty base, run as
# an unprivileged user, with the CA bundle its outbound TLS calls need.
#
# Build it with .ci/image, which compiles the binary with the host's Go
# (CGO_ENABLED=0, so it needs no libc; -tags=nomsgpack drops gin's unused
# MessagePack codec) and prepares this build context:
#
#   leadcontacts          the binary
#   ca-certificates.crt   the CA bundle (the host's /etc/ssl/certs one)
#   data/                 an empty directory, the SQLite volume
#
# No golang base image has to be pulled, so it builds offline.
# No HEALTHCHECK: orchestrators probe /healthz and /readyz over HTTP.
FROM scratch

COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# Owned by the app's user so the default DATABASE_URL (sqlite:data/app.db,
# relative to the working directory /) can be written; mount a volume here.
COPY --chown=65532:65532 data/ /data/
COPY leadcontacts /leadcontacts

# 65532 is the "nonroot" user of the distroless images; no passwd entry
# is needed, the binary never looks its user up.
USER 65532:65532
WORKDIR /
VOLUME ["/data"]
# The default listen address; PORT, when the platform sets it, wins.
EXPOSE 8080
ENTRYPOINT ["/leadcontacts"]
