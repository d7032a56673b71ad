# The threshold KMS image: one image for the coordinator and the nodes (the command picks the role).
# BASE_IMAGE: a Debian bookworm image with Node.js 24 (the official one by default). CI has no image
# registry: .ci/compose-smoke.sh builds its base from Debian packages (debootstrap) with SoftHSM2,
# Node.js and the production node_modules already in it, and passes PREBUILT_DEPS=1.
ARG BASE_IMAGE=node:24-slim
FROM ${BASE_IMAGE}
ARG PREBUILT_DEPS=0
RUN if [ "$PREBUILT_DEPS" = 1 ]; then softhsm2-util --version; else \
      apt-get update \
   && apt-get install -y --no-install-recommends softhsm2 openssl python3 make g++ \
   && rm -rf /var/lib/apt/lists/*; fi
WORKDIR /app
COPY package.json package-lock.json ./
RUN if [ "$PREBUILT_DEPS" = 1 ]; then test -d node_modules; else npm ci --omit=dev --no-audit --no-fund; fi
# Everything else the processes load (.dockerignore keeps node_modules, .git and devnet state out).
COPY . .
ENV NODE_ENV=production
# Devnet state (configs, allow-list, per-node tokens and data) lives under /devnet, one volume per
# service (docker-compose.yml). Every process runs as the non-root user `kms` (review H-5); the
# volume mount points exist here owned by it, so a fresh named volume takes that ownership
# (Docker and podman copy it up) and `kms` can write its own volume and nothing else.
RUN echo 'kms:x:10001:10001:threshold-kms:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'kms:x:10001:' >> /etc/group \
 && mkdir -p /devnet/public /devnet/coordinator \
      /devnet/node-1 /devnet/node-2 /devnet/node-3 /devnet/node-4 /devnet/node-5 \
 && chown -R 10001:10001 /devnet && chmod 0700 /devnet /devnet/coordinator /devnet/node-1 \
      /devnet/node-2 /devnet/node-3 /devnet/node-4 /devnet/node-5
USER 10001:10001
VOLUME ["/devnet"]
EXPOSE 8080 7000
CMD ["node", "node/main.ts", "--help"]
