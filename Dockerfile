# The threshold KMS image: one image for the coordinator and the nodes (the command picks the role).
FROM node:24-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends softhsm2 openssl python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY protocol ./protocol
COPY node ./node
COPY coordinator ./coordinator
COPY scripts ./scripts
ENV NODE_ENV=production
# Devnet state (configs, allow-list, per-node tokens and data) lives under /devnet.
VOLUME ["/devnet"]
EXPOSE 8080 7000
CMD ["node", "node/main.ts", "--help"]
