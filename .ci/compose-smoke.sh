#!/usr/bin/env bash
# The docker-compose devnet for real, under podman (CI has no Docker engine and no image registry).
#
#   1. podman, podman-compose and debootstrap from Debian, if missing.
#   2. A base image from Debian packages (debootstrap minbase bookworm + SoftHSM2, then podman import),
#      built once and kept; a deps image on top of it with Node.js and the production node_modules
#      taken from this checkout's `npm ci` (kept per package-lock.json); then the app image from the
#      project's own Dockerfile (BASE_IMAGE=<deps image>, PREBUILT_DEPS=1, no network in the build).
#   3. docker-compose.yml up: the init service to completion, then the coordinator and the nodes.
#   4. Waits for health (every node's compose health check, the coordinator's /readyz, every node
#      reachable); checks the isolation of review H-5 in the running containers (non-root, no node
#      reads the admin token, the admin key or the coordinator identity, nobody but init writes
#      the allow-list); creates an Ed25519 key and signs through the port published on 127.0.0.1
#      with the `kms` CLI (requests signed by the devnet's admin principal, its key read from the
#      init-only volume), verifies with OpenSSL; stops one node container and signs again.
#   5. Tears everything down (containers, volumes, network, app image) on success and on failure;
#      the base and deps images stay as a cache.
#
# Needs root and `npm ci` done in this checkout (the deps image is made from its node_modules).
# A machine where podman cannot run a container fails here with a message saying so: that is not a
# product failure, but it is not skipped either.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export DEBIAN_FRONTEND=noninteractive

PROJECT=tkms-smoke
BASE_IMAGE=localhost/tkms-base:bookworm
BASE_PACKAGES=softhsm2,openssl,ca-certificates
APP_IMAGE=threshold-kms:dev # the image docker-compose.yml names
DEBIAN_MIRROR=${KMS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Every container gets explicit limits (the same as docker-compose.yml's): this host refuses podman's.
ULIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
INIT_TIMEOUT=${KMS_SMOKE_INIT_TIMEOUT:-240}
READY_TIMEOUT=${KMS_SMOKE_READY_TIMEOUT:-240}
REQUEST_TIMEOUT=${KMS_SMOKE_REQUEST_TIMEOUT:-120}
COMPOSE=(podman-compose --no-ansi -p "$PROJECT" -f docker-compose.yml)
NODE_BIN=$ROOT/node_modules/node/bin/node
WORK=$(mktemp -d /var/tmp/tkms-smoke.XXXXXX)
START=$SECONDS

log() { printf 'compose-smoke: %s\n' "$*" >&2; }
fail() {
  log "FAILED: $*"
  exit 1
}
infra_fail() {
  log "FAILED: podman cannot run containers on this machine (an infrastructure problem, not a product failure): $*"
  exit 1
}
phase() {
  PHASES+=("$1 $((SECONDS - PHASE_START))s")
  PHASE_START=$SECONDS
}
PHASES=()
PHASE_START=$SECONDS

[ "$(id -u)" = 0 ] || fail "run as root (rootful podman, as in CI)"
[ -x "$NODE_BIN" ] || fail "no $NODE_BIN: run \`npm ci\` first (the image takes Node.js and node_modules from it)"
grep -q "image: $APP_IMAGE" docker-compose.yml || fail "docker-compose.yml no longer names $APP_IMAGE"

# --- teardown, always ---------------------------------------------------------------------------
project_containers() { podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" 2>/dev/null || true; }
teardown() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ "$rc" != 0 ] && command -v podman >/dev/null && [ -n "$(project_containers)" ]; then
    log "state at failure:"
    podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '  {{.Names}}  {{.Status}}' >&2
    for c in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
      log "--- last log lines of $c"
      podman logs --tail 25 "$c" 2>&1 | sed 's/^/    /' >&2
    done
  fi
  if command -v podman >/dev/null; then
    log "tearing down"
    timeout 120 "${COMPOSE[@]}" down -v >/dev/null 2>&1
    local left
    left=$(project_containers)
    [ -z "$left" ] || podman rm -f -t 2 $left >/dev/null 2>&1
    for v in $(podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT" 2>/dev/null); do
      podman volume rm -f "$v" >/dev/null 2>&1
    done
    podman network rm -f "${PROJECT}_default" >/dev/null 2>&1
    podman rmi "$APP_IMAGE" >/dev/null 2>&1
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap teardown EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated (a time limit?)"; exit 143' TERM

# --- 1. tools -------------------------------------------------------------------------------------
need_apt=()
command -v podman >/dev/null || need_apt+=(podman)
command -v podman-compose >/dev/null || need_apt+=(podman-compose)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  { timeout 600 apt-get update -qq && timeout 600 apt-get install -y -qq "${need_apt[@]}" >/dev/null; } ||
    fail "apt-get could not install ${need_apt[*]}"
fi
log "$(podman --version), podman-compose $(podman-compose version 2>/dev/null | sed -n 's/^podman-compose[a-z]* version *//p' | head -1)"
phase tools

# --- 2. images ------------------------------------------------------------------------------------
if [ "$(podman image inspect --format '{{index .Labels "tkms.packages"}}' "$BASE_IMAGE" 2>/dev/null)" = "$BASE_PACKAGES" ]; then
  log "base image $BASE_IMAGE (cached)"
else
  log "building $BASE_IMAGE: debootstrap --variant=minbase bookworm + $BASE_PACKAGES"
  rootfs=$WORK/rootfs
  if ! timeout 900 debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -20 "$WORK/debootstrap.log" >&2
    fail "debootstrap failed (log above)"
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'LABEL tkms.packages='"$BASE_PACKAGES" \
    --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >"$WORK/import.log" 2>&1 || {
    cat "$WORK/import.log" >&2
    fail "podman import of the debootstrap tree failed"
  }
  rm -rf "$rootfs"
fi
# Can this machine run a container at all? Asked before anything of the project's runs in one.
if ! out=$(timeout 60 podman run --rm --network none "${ULIMITS[@]}" "$BASE_IMAGE" softhsm2-util --version 2>&1); then
  infra_fail "$out"
fi
phase base-image

# Node.js and node_modules: the ones `npm ci` installed here (the `node` devDependency ships the
# binary), production dependencies only. Native addons were built on this same Debian release.
deps_key=$(cat package-lock.json "$NODE_BIN" <(printf '%s' "$BASE_PACKAGES") | sha256sum | cut -c1-16)
DEPS_IMAGE=localhost/tkms-ci-deps:$deps_key
if podman image exists "$DEPS_IMAGE"; then
  log "deps image $DEPS_IMAGE (cached)"
else
  log "building $DEPS_IMAGE (Node.js $("$NODE_BIN" --version), production node_modules)"
  ctx=$WORK/deps
  mkdir -p "$ctx"
  cp package.json package-lock.json "$ctx/"
  cp "$NODE_BIN" "$ctx/node"
  cp -a node_modules "$ctx/node_modules"
  (cd "$ctx" && npm prune --omit=dev --no-audit --no-fund --ignore-scripts >"$WORK/prune.log" 2>&1) || {
    cat "$WORK/prune.log" >&2
    fail "npm prune of the copied node_modules failed"
  }
  printf '%s\n' "FROM $BASE_IMAGE" 'COPY node /usr/local/bin/node' 'COPY node_modules /app/node_modules' \
    'RUN node --version' >"$ctx/Containerfile"
  timeout 300 podman build -q --network none "${ULIMITS[@]}" -t "$DEPS_IMAGE" "$ctx" >"$WORK/deps-build.log" 2>&1 || {
    tail -30 "$WORK/deps-build.log" >&2
    fail "podman build of the deps image failed (log above)"
  }
  rm -rf "$ctx"
  for old in $(podman images --format '{{.Repository}}:{{.Tag}}' localhost/tkms-ci-deps); do
    [ "$old" = "$DEPS_IMAGE" ] || podman rmi "$old" >/dev/null 2>&1 || true
  done
fi
phase deps-image

log "building $APP_IMAGE from the Dockerfile (BASE_IMAGE=$DEPS_IMAGE, PREBUILT_DEPS=1)"
if ! timeout 300 podman build -q --network none "${ULIMITS[@]}" --build-arg "BASE_IMAGE=$DEPS_IMAGE" \
  --build-arg PREBUILT_DEPS=1 -t "$APP_IMAGE" -f Dockerfile . >"$WORK/build.log" 2>&1; then
  tail -30 "$WORK/build.log" >&2
  fail "podman build of the Dockerfile failed (log above)"
fi
phase app-image

# --- 3. up ----------------------------------------------------------------------------------------
# A leftover of an interrupted run would make `up` reuse stale state.
[ -z "$(project_containers)" ] || {
  log "removing a previous run's containers"
  timeout 120 "${COMPOSE[@]}" down -v >/dev/null 2>&1 || true
}
# The port the coordinator is published on must be free, or podman leaves it created but not running.
published=$("$NODE_BIN" -e '
  const y = require("yaml").parse(require("fs").readFileSync("docker-compose.yml", "utf8"), { merge: true });
  for (const p of y.services.coordinator.ports ?? []) console.log(String(p).split(":").at(-2));')
for port in $published; do
  if command -v ss >/dev/null && [ -n "$(ss -Hltn "sport = :$port")" ]; then
    fail "port $port on this host is already in use; the compose devnet publishes the API there"
  fi
done
# podman-compose 1.0 starts every service at once (it ignores depends_on conditions): run init to
# completion first, as `docker compose up` does for service_completed_successfully.
container_of() { podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1" | head -1; }
timeout 120 "${COMPOSE[@]}" up -d --no-build init >"$WORK/up-init.log" 2>&1 || {
  cat "$WORK/up-init.log" >&2
  fail "podman-compose up init failed"
}
init=$(container_of init)
[ -n "$init" ] || { cat "$WORK/up-init.log" >&2; fail "no init container was created"; }
if ! code=$(timeout "$INIT_TIMEOUT" podman wait "$init"); then
  fail "init did not finish within ${INIT_TIMEOUT}s"
fi
[ "$code" = 0 ] || fail "init exited with $code"
phase init

timeout 180 "${COMPOSE[@]}" up -d --no-build >"$WORK/up.log" 2>&1 || {
  cat "$WORK/up.log" >&2
  fail "podman-compose up failed"
}
nodes=()
for s in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{index .Labels "com.docker.compose.service"}}' | sort); do
  case $s in node-*) nodes+=("$s") ;; esac
done
[ ${#nodes[@]} -ge 3 ] || fail "expected at least 3 node containers, found ${#nodes[@]}"
coord=$(container_of coordinator)
[ -n "$coord" ] || fail "no coordinator container"

# The API as published on the host: 127.0.0.1 and the host port compose mapped to the coordinator.
devnet=$(podman volume inspect "${PROJECT}_devnet" --format '{{.Mountpoint}}')
coordvol=$(podman volume inspect "${PROJECT}_coordinator" --format '{{.Mountpoint}}')
mapping=$(podman port "$coord" | head -1)
hostport=${mapping##*:}
[[ "$hostport" =~ ^[0-9]+$ ]] || fail "the coordinator publishes no port (podman port: '$mapping')"
# docker-compose.yml publishes the API on loopback only unless KMS_PUBLISH_HOST says otherwise.
if [ -z "${KMS_PUBLISH_HOST:-}" ]; then
  case ${mapping#* -> } in 127.0.0.1:*) ;; *) fail "the API is published beyond loopback: $mapping" ;; esac
fi
TOKEN=$(cat "$coordvol/admin-token")
CURL=(curl -sS --max-time 60)
if [ -f "$devnet/ca.pem" ]; then
  # HTTPS with the devnet's CA: the name in the certificate is the one in api-url (the compose
  # devnet's own), the connection goes to the published port on 127.0.0.1.
  api_url=$(cat "$devnet/api-url" 2>/dev/null || echo "https://localhost:$hostport")
  authority=${api_url#https://}
  authority=${authority%%/*}
  host=${authority%:*}
  port=${authority##*:}
  [ "$port" != "$authority" ] || port=443
  URL="https://$host:$port"
  CURL+=(--cacert "$devnet/ca.pem" --connect-to "$host:$port:127.0.0.1:$hostport")
  scheme=https
else
  URL="http://127.0.0.1:$hostport"
  scheme=http
fi
log "coordinator API $URL (port $hostport on 127.0.0.1, $scheme)"

json() { "$NODE_BIN" -e '
  let v = JSON.parse(require("fs").readFileSync(0, "utf8"));
  for (const k of process.argv[1].split(".")) v = v?.[k];
  if (v === undefined || v === null) process.exit(3);
  process.stdout.write(typeof v === "string" ? v : JSON.stringify(v));' "$1"; }
api() { # METHOD PATH [BODY] -> body on stdout; fails on a non-2xx answer
  local out code
  out=$("${CURL[@]}" -X "$1" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    ${3:+--data "$3"} -w '\n%{http_code}' "$URL$2") || return 1
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  if [[ "$code" != 2?? ]]; then
    log "$1 $2 -> $code $out"
    return 1
  fi
  printf '%s' "$out"
}

# --- 4. health --------------------------------------------------------------------------------------
log "waiting for health (at most ${READY_TIMEOUT}s)"
deadline=$((SECONDS + READY_TIMEOUT))
status=""
while :; do
  pending=()
  for s in "${nodes[@]}" coordinator; do
    c=$(container_of "$s")
    state=$(podman inspect --format '{{.State.Status}}' "$c")
    [ "$state" = running ] || { pending+=("$s:$state"); continue; }
    # The compose file's own health check, run by podman (no systemd timer drives it here).
    if [ -n "$(podman inspect --format '{{if .Config.Healthcheck}}y{{end}}' "$c")" ]; then
      podman healthcheck run "$c" >/dev/null 2>&1 || pending+=("$s:unhealthy")
    fi
  done
  ready=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$URL/readyz" 2>/dev/null || true)
  [ "$ready" = 200 ] || pending+=("coordinator-readyz:${ready:-none}")
  if [ ${#pending[@]} = 0 ]; then
    reachable=$(api GET /v1/nodes 2>/dev/null | "$NODE_BIN" -e '
      const b = JSON.parse(require("fs").readFileSync(0, "utf8"));
      process.stdout.write(String(b.nodes.filter((n) => n.reachable).length));' 2>/dev/null || echo 0)
    [ "$reachable" = "${#nodes[@]}" ] || pending+=("reachable:$reachable/${#nodes[@]}")
  fi
  # Signed requests need the governance genesis on the nodes: reading it offers it to a node that
  # started after the coordinator (podman-compose starts every service at once).
  if [ ${#pending[@]} = 0 ]; then
    api GET /v1/governance >/dev/null 2>&1 || pending+=("governance-genesis")
  fi
  [ ${#pending[@]} = 0 ] && break
  if [ "${pending[*]}" != "$status" ]; then
    status="${pending[*]}"
    log "  not yet: $status"
  fi
  [ $SECONDS -lt $deadline ] || fail "devnet not healthy after ${READY_TIMEOUT}s: ${pending[*]}"
  sleep 2
done
log "healthy: coordinator + ${#nodes[@]} nodes"
phase healthy

# --- 5. isolation (review H-5) ------------------------------------------------------------------------
in_container() { podman exec "$(container_of "$1")" sh -c "$2" 2>&1; }
for s in "${nodes[@]}" coordinator; do
  uid=$(in_container "$s" 'id -u') || fail "$s: cannot run id"
  [ "$uid" != 0 ] || fail "$s runs as root"
done
for s in "${nodes[@]}"; do
  for f in /devnet/admin-key /devnet/admin-token /devnet/coordinator/admin-token \
    /devnet/coordinator/identity.sealed /devnet/coordinator/identity-passphrase /devnet/coordinator/tls/server.key; do
    if in_container "$s" "cat $f" >/dev/null; then fail "$s can read $f"; fi
  done
  other=node-1
  [ "$s" != node-1 ] || other=node-2
  if in_container "$s" "ls /devnet/$other/" | grep -q node.json; then fail "$s can read /devnet/$other"; fi
  in_container "$s" "cat /devnet/public/cluster.json" >/dev/null || fail "$s cannot read the allow-list"
done
for s in coordinator "${nodes[0]}"; do
  if in_container "$s" 'echo x >> /devnet/public/cluster.json'; then fail "$s can write the allow-list"; fi
done
if in_container coordinator 'cat /devnet/admin-key' >/dev/null; then fail "the coordinator can read the admin key"; fi
in_container coordinator 'grep -q tkms-sealed-identity /devnet/coordinator/identity.sealed' >/dev/null ||
  fail "the coordinator identity is not sealed"
log "isolation: every service runs as non-root; no node reads the admin token, admin key or coordinator identity; the allow-list is read-only"
phase isolation

# --- 6. sign and verify -----------------------------------------------------------------------------
# The kms CLI of this checkout, signing as the devnet's admin principal (its key from init's volume).
mkdir -p "$WORK/no-devnet"
kms() {
  KMS_DEVNET_DIR="$WORK/no-devnet" KMS_URL="https://127.0.0.1:$hostport" KMS_CA="$devnet/ca.pem" \
    KMS_TOKEN="$TOKEN" KMS_PRINCIPAL=admin KMS_PRINCIPAL_KEY="$devnet/admin-key" \
    timeout "$REQUEST_TIMEOUT" "$NODE_BIN" scripts/kms.ts --json "$@"
}
hex2bin() { printf '%b' "$(sed 's/../\\x&/g' <<<"$1")"; }
ed25519_pem() { # RFC 8410 SubjectPublicKeyInfo around a raw 32-byte key
  printf -- '-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n' \
    "$(hex2bin "302a300506032b6570032100$1" | base64 -w 64)"
}
sign_and_verify() { # label: signs a fresh message with the key, verifies it with OpenSSL
  local msg sig signers
  msg=$(openssl rand -hex 32)
  local answer
  answer=$(kms keys sign "$KEY_ID" --message-hex "$msg" 2>"$WORK/kms.err") || fail "$1: sign failed: $(cat "$WORK/kms.err")"
  sig=$(json signature <<<"$answer") || fail "$1: no signature in $answer"
  signers=$(json signers <<<"$answer") || fail "$1: no signers in $answer"
  LAST_SIGNERS=$signers
  hex2bin "$msg" >"$WORK/msg.bin"
  hex2bin "$sig" >"$WORK/sig.bin"
  openssl pkeyutl -verify -pubin -inkey "$WORK/pub.pem" -rawin -in "$WORK/msg.bin" \
    -sigfile "$WORK/sig.bin" >/dev/null || fail "$1: OpenSSL rejects the signature"
  # The same signature over another message must fail, or the check above proves nothing.
  printf 'x' >>"$WORK/msg.bin"
  if openssl pkeyutl -verify -pubin -inkey "$WORK/pub.pem" -rawin -in "$WORK/msg.bin" \
    -sigfile "$WORK/sig.bin" >/dev/null 2>&1; then
    fail "$1: OpenSSL accepted the signature for a different message"
  fi
  log "$1: signature by $signers verified by OpenSSL"
}

key=$(kms keys create --spec FROST_ED25519 --threshold 3 --alias compose-smoke 2>"$WORK/kms.err") ||
  fail "key creation failed: $(cat "$WORK/kms.err")"
KEY_ID=$(json keyId <<<"$key") || fail "no keyId in $key"
deadline=$((SECONDS + REQUEST_TIMEOUT))
until PUB=$(json publicKey <<<"$key"); do
  [ $SECONDS -lt $deadline ] || fail "key $KEY_ID has no public key after ${REQUEST_TIMEOUT}s: $key"
  sleep 1
  key=$(api GET "/v1/keys/$KEY_ID") || fail "GET key failed"
done
[[ "$PUB" =~ ^[0-9a-f]{64}$ ]] || fail "not an Ed25519 public key: $PUB"
ed25519_pem "$PUB" >"$WORK/pub.pem"
# The SPKI the service publishes is the same key.
"${CURL[@]}" -f -H "authorization: Bearer $TOKEN" -H 'accept: application/x-pem-file' \
  "$URL/v1/keys/$KEY_ID/public-key" >"$WORK/service.pem" || fail "GET public-key as PEM failed"
cmp -s <(openssl pkey -pubin -in "$WORK/pub.pem" -outform DER) \
  <(openssl pkey -pubin -in "$WORK/service.pem" -outform DER) ||
  fail "the service's PEM is not the key's public key: $(cat "$WORK/service.pem")"
log "key $KEY_ID created by DKG on $(json participants <<<"$key")"
phase dkg

sign_and_verify "all nodes up"
phase sign

# Stop a node that just signed, so the next signature has to be made without it.
stopped=$(json 0 <<<"$LAST_SIGNERS") || fail "no signer in $LAST_SIGNERS"
podman stop -t 10 "$(container_of "$stopped")" >"$WORK/stop.log" 2>&1 || {
  cat "$WORK/stop.log" >&2
  fail "could not stop the $stopped container"
}
log "stopped the $stopped container"
sign_and_verify "$stopped stopped"
phase sign-one-down

# --- summary ----------------------------------------------------------------------------------------
log "phases: ${PHASES[*]}"
echo "compose-smoke: passed: podman compose devnet (coordinator + ${#nodes[@]} nodes, $scheme on 127.0.0.1:$hostport): services isolated and non-root, Ed25519 key by DKG, signed (requests signed by the admin principal) and OpenSSL-verified with all nodes up and with $stopped stopped, in $((SECONDS - START))s"
