# syntax=docker/dockerfile:1
# lob-rtrl service image. Build: docker build -t lob-rtrl .   Run: see README "Deployment".

# ---- build: compile better-sqlite3, the native RTRL kernel and the TypeScript, then drop dev dependencies
FROM node:24-bookworm-slim AS build
WORKDIR /app
# node-gyp needs a compiler and python to build better-sqlite3 from source and the native kernel.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json binding.gyp ./
COPY native ./native
COPY scripts/build-native.mjs ./scripts/build-native.mjs
# npm ci runs the install script, which builds build/Release/lob_rtrl_native.node with node-gyp
# (one build for any x86-64: AVX-512, AVX2+FMA or baseline chosen at load). The image must run
# it, so a failed build fails here rather than leaving the TypeScript kernel.
RUN npm ci --no-audit --no-fund && test -f build/Release/lob_rtrl_native.node
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
# better-sqlite3's object files and SQLite sources (~29 MB) are only needed to compile it.
RUN npm run build && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/better-sqlite3/build/Release/obj node_modules/better-sqlite3/build/Release/obj.target \
           node_modules/better-sqlite3/build/Release/test_extension.node node_modules/better-sqlite3/deps

# ---- runtime: production dependencies and the built output only --------------------------
FROM node:24-bookworm-slim AS runtime
# tini forwards SIGTERM to node so shutdown writes its checkpoints, and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    LOB_RTRL_HOST=0.0.0.0 \
    LOB_RTRL_PORT=8080 \
    LOB_RTRL_DB=/data/lob-rtrl.sqlite
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The native RTRL kernel; the service logs "RTRL kernel: native-..." and /v1/status names it.
COPY --from=build /app/build/Release/lob_rtrl_native.node ./build/Release/lob_rtrl_native.node
COPY migrations ./migrations
# The dashboard page and its scripts are served as they are (tsc emits only .js from .ts).
COPY src/http/dashboard ./src/http/dashboard
# The bundled Binance recording: the built-in demo feed when no LOB_RTRL_FEEDS is set.
COPY fixtures/binance ./fixtures/binance
# The stand-in recordings of the other venues, for compose's offline demo of each (compose.yaml).
COPY fixtures/coinbase/btc-usdt_from-binance_20240808.gz ./fixtures/coinbase/
COPY fixtures/kraken/xbt-usdt_book10_v1_from-binance_20240808.gz fixtures/kraken/btc-usdt_book10_v2_from-binance_20240808.gz ./fixtures/kraken/
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.LOB_RTRL_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/cli/main.js", "serve"]
