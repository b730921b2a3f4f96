# syntax=docker/dockerfile:1

# Node 22: a maintained LTS line (20 reached its end of life in April 2026), and the
# release several production dependencies now ask for; the API, Redis, client and
# operations tests pass on it as they do on the Node 20 that CI uses.
# ---- Build stage: needs the dev dependencies (TypeScript, @types/node) to compile. ----
FROM node:22-bookworm-slim AS build
WORKDIR /app

# Dependencies first, from the lockfile only, so this layer stays cached until they change.
# The lockfile names the client workspace (packages/client), so npm ci needs its package.json
# too; its sources are not copied: the image builds and runs the service only.
COPY package.json package-lock.json ./
COPY packages/client/package.json ./packages/client/
RUN npm ci --no-audit --no-fund

# Only what the build reads; tests and tooling stay out of the image.
COPY tsconfig*.json ./
COPY src ./src
COPY plugins ./plugins
COPY routes ./routes
# rootDir is '.', so this writes dist/src, dist/plugins, dist/routes and dist/package.json.
RUN npm run build

# ---- Runtime stage: production dependencies and compiled JavaScript only. ----
FROM node:22-bookworm-slim AS runtime
# Also makes the service refuse to start without API_KEYS (or AUTH_DISABLED=true).
ENV NODE_ENV=production
WORKDIR /app

# A clean production install: no compiler, no test tools in the final image. (The client
# workspace's package.json again, for the lockfile; npm links it, and it holds nothing else.)
COPY package.json package-lock.json ./
COPY packages/client/package.json ./packages/client/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY --from=build /app/dist ./dist

# The files stay root-owned; the process runs unprivileged and cannot change them.
USER node
EXPOSE 8080

# Uses node itself (the slim image has no curl/wget) and the liveness route, which does not
# depend on the store; honours PORT when it is overridden.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Exec form: node is PID 1 and receives SIGTERM directly, so close-with-grace can drain
# in-flight requests (within SHUTDOWN_TIMEOUT_MS) before the orchestrator's kill. The
# preload starts tracing before anything else loads, when it is configured (as npm start).
CMD ["node", "--import", "./dist/src/telemetry/preload.js", "dist/src/server.js"]
