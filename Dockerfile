# syntax=docker/dockerfile:1
# custody-node: the compiled service on Node 24 LTS, production dependencies only, run as the
# unprivileged `node` user under tini (PID 1 forwards SIGTERM to node and reaps children).
# Every ECS task runs `tini -- node ops/bin/custody-node.js <command…>`; task definitions set only
# the command (ops/infra/plan.ts IMAGE_ENTRY; ops/bin/dockerfile.test.ts keeps the two equal).
#   docker build -t custody-node .
#   docker run --rm -e DATABASE_URL=… -e REDIS_URL=… -e CUSTODY_CONFIG_JSON=… custody-node start --roles api
ARG NODE_IMAGE=node:24-bookworm-slim

# 1. Compile TypeScript to dist/ (with the run-time assets: SQL migrations, artifacts, HTML).
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY api ./api
COPY chains ./chains
COPY indexers ./indexers
COPY ledger ./ledger
COPY foundation ./foundation
COPY ops ./ops
COPY signer ./signer
# The image's own node (not node_modules/.bin, which is the dev/test runtime on x64 only).
RUN node ops/bin/build.js

# 2. Production dependencies only (install scripts off: nothing here needs a native build).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force

# 3. The runtime image.
FROM ${NODE_IMAGE}
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
  HOST=0.0.0.0 \
  PORT=8080 \
  TINI_SUBREAPER=1 \
  NODE_COMPILE_CACHE=/app/.cache/node
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY ops/bin/custody-node.js ./ops/bin/custody-node.js
RUN mkdir -p /app/.cache/node && chown -R node:node /app/.cache
USER node
# Fills Node's compile cache so the first start in a task skips most parsing.
RUN node ops/bin/custody-node.js --help >/dev/null
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["tini", "--", "node", "ops/bin/custody-node.js"]
CMD ["start"]
