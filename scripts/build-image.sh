#!/usr/bin/env bash
# Builds and smoke-runs the lob-rtrl image with Debian's buildah/podman on a machine that has no
# Docker engine and no reachable image registry (nor nodejs.org / github.com).
#
#   1. assembles docker.io/library/node:20-bookworm-slim locally: a debootstrap minbase bookworm
#      rootfs + this machine's Node 20 (binary, npm, corepack, headers) laid out like the official
#      image (/usr/local/...), user node 1000:1000 -- skipped when the image already exists;
#   2. builds the repository's Dockerfile unchanged as lob-rtrl:latest;
#   3. runs it, checks /healthz, a BTCUSDT prediction from the built-in demo feed, the image's own
#      HEALTHCHECK, then stops it with SIGTERM and looks for the shutdown checkpoint in /data.
#
# Usage (root):  scripts/build-image.sh [--rebuild-base] [--no-smoke]
# Environment:   DEBIAN_MIRROR (default http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR
#                (default http://deb.debian.org/debian-security), WORK_DIR (default
#                /var/tmp/lob-rtrl-image), SMOKE_PORT (default 18099), OCI_RUNTIME (default runc),
#                BUILDAH_ISOLATION (default oci), HOST_CA_BUNDLE (default
#                /etc/ssl/certs/ca-certificates.crt). Storage: containers/storage's default (overlay).
# Why runc and explicit ulimits: in this sandbox crun refuses to start anything ("cgroups in hybrid
# mode not supported, drop all controllers from cgroupv2": cgroup v1 plus a v2 hierarchy with the
# hugetlb controller), and podman's default RLIMIT_NOFILE/NPROC exceed what the sandbox lets a
# runtime set ("setrlimit ...: Operation not permitted"), so the smoke run lowers them.
# Not run in CI. Re-runnable: the base image is reused, build layers are cached (--layers), and the
# smoke containers are replaced. Images replaced by a rebuild stay behind untagged: list them with
# `buildah images -a`, remove them with `buildah rmi <id>`.
set -euo pipefail

readonly REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly BASE_IMAGE=docker.io/library/node:20-bookworm-slim
readonly APP_IMAGE=localhost/lob-rtrl:latest
readonly SMOKE_CONTAINER=lob-rtrl-smoke
readonly HEALTH_CONTAINER=lob-rtrl-healthcheck
readonly DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
readonly DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
readonly WORK_DIR="${WORK_DIR:-/var/tmp/lob-rtrl-image}"
readonly SMOKE_PORT="${SMOKE_PORT:-18099}"
readonly OCI_RUNTIME="${OCI_RUNTIME:-runc}"
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-oci}"

rebuild_base=false
smoke=true
for arg in "$@"; do
  case "$arg" in
    --rebuild-base) rebuild_base=true ;;
    --no-smoke) smoke=false ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

step_started=$SECONDS
step() { step_started=$SECONDS; printf '\n==> %s\n' "$*"; }
done_step() { printf '    done in %ss\n' "$((SECONDS - step_started))"; }
fail() { printf '!!! %s\n' "$*" >&2; exit 1; }

# ---- 0. prerequisites ----------------------------------------------------------------------------
step "checking prerequisites"
[[ $(id -u) -eq 0 ]] || fail "run as root: debootstrap, chroot and rootful buildah/podman need it"
missing=()
for tool in buildah podman debootstrap "$OCI_RUNTIME" curl sqlite3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
((${#missing[@]} == 0)) || fail "missing: ${missing[*]} (apt-get install buildah podman debootstrap runc uidmap fuse-overlayfs curl sqlite3)"
host_node="$(command -v node)" || fail "no node on PATH"
node_version="$("$host_node" -p 'process.versions.node')"
[[ $node_version == 20.* ]] || fail "the base image must carry Node 20, this machine has $node_version"
node_prefix="$(dirname "$(dirname "$(readlink -f "$host_node")")")"
[[ -d $node_prefix/lib/node_modules/npm ]] || fail "npm not found under $node_prefix/lib/node_modules"
[[ -f $node_prefix/include/node/node.h ]] || fail "Node headers not found under $node_prefix/include/node"
echo "    buildah $(buildah --version | awk '{print $3}'), podman $(podman --version | awk '{print $3}'), node $node_version from $node_prefix"
done_step

# ---- 1. base image: node:20-bookworm-slim assembled locally --------------------------------------
build_base_image() {
  local rootfs="$WORK_DIR/rootfs"
  rm -rf "$rootfs"
  mkdir -p "$WORK_DIR"

  step "debootstrap --variant=minbase bookworm from $DEBIAN_MIRROR"
  debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK_DIR/debootstrap.log" 2>&1 ||
    fail "debootstrap failed; see $WORK_DIR/debootstrap.log"
  done_step

  step "configuring the rootfs like debian:bookworm-slim (apt sources, docker apt/dpkg settings)"
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # The same intent as the official slim images: no docs/man/locales, no cached .debs or lists.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'APT::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  # The container runtime provides these at run time; the host's copies must not leak in.
  : >"$rootfs/etc/resolv.conf"
  echo localhost >"$rootfs/etc/hostname"
  done_step

  step "installing this machine's Node $node_version under /usr/local, user node 1000:1000"
  install -D -m 0755 "$(readlink -f "$host_node")" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules" "$rootfs/usr/local/include"
  cp -a "$node_prefix/lib/node_modules/npm" "$rootfs/usr/local/lib/node_modules/"
  [[ -d $node_prefix/lib/node_modules/corepack ]] && cp -a "$node_prefix/lib/node_modules/corepack" "$rootfs/usr/local/lib/node_modules/"
  # The official image ships the headers (it is the release tarball unpacked); node-gyp needs them.
  cp -a "$node_prefix/include/node" "$rootfs/usr/local/include/"
  ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  [[ -d $rootfs/usr/local/lib/node_modules/corepack ]] &&
    ln -sfn ../lib/node_modules/corepack/dist/corepack.js "$rootfs/usr/local/bin/corepack"
  # Same behaviour as the official entrypoint: `docker run node:20 script.js` or `-e ...` runs node.
  cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
EOF
  chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
  # A clean environment: the host's NODE_* / npm_config_* settings must not shape the rootfs.
  in_rootfs() { chroot "$rootfs" /usr/bin/env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
  in_rootfs groupadd --gid 1000 node
  in_rootfs useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  echo "    in the rootfs: node $(in_rootfs node -v), npm $(in_rootfs npm -v), $(in_rootfs id node)"
  done_step

  step "committing the rootfs as $BASE_IMAGE"
  local container mountpoint
  container="$(buildah from scratch)"
  mountpoint="$(buildah mount "$container")"
  tar -C "$rootfs" --numeric-owner -cf - . | tar -C "$mountpoint" --numeric-owner -xpf -
  buildah umount "$container" >/dev/null
  buildah config \
    --os linux --arch amd64 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="$node_version" \
    --entrypoint '["docker-entrypoint.sh"]' --cmd '["node"]' \
    --label org.opencontainers.image.description="locally assembled stand-in for node:20-bookworm-slim (debootstrap minbase + host Node $node_version)" \
    "$container"
  buildah commit --quiet --format docker --rm "$container" "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  buildah images "$BASE_IMAGE"
  done_step
}

if ! $rebuild_base && buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  step "base image $BASE_IMAGE already present: reusing it (--rebuild-base to assemble it again)"
  buildah images "$BASE_IMAGE"
else
  build_base_image
fi

# ---- 2. the project's Dockerfile, unchanged --------------------------------------------------------
# Two facts of this machine's network, handled with an npmrc that is bind-mounted only while RUN
# steps execute (never baked into a layer, so the image stays as the Dockerfile describes it):
#  - HTTPS leaves through a TLS-intercepting egress proxy, so npm must trust this machine's CA
#    bundle (without it: "npm error code SELF_SIGNED_CERT_IN_CHAIN" from registry.npmjs.org);
#  - github.com and nodejs.org are unreachable, so better-sqlite3's prebuilt binary cannot be
#    fetched, node-gyp compiles it, and it must take Node's headers from the base image's
#    /usr/local/include/node (as the official image ships them) instead of downloading them.
readonly HOST_CA_BUNDLE="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
build_npmrc="$WORK_DIR/build-npmrc"
mkdir -p "$WORK_DIR"
build_mounts=(--volume "$build_npmrc:/root/.npmrc:ro")
printf 'nodedir=/usr/local\n' >"$build_npmrc"
if [[ -f $HOST_CA_BUNDLE ]]; then
  printf 'cafile=/run/host-ca-bundle.crt\n' >>"$build_npmrc"
  build_mounts+=(--volume "$HOST_CA_BUNDLE:/run/host-ca-bundle.crt:ro")
fi
echo "    build-time npmrc: $(tr '\n' ' ' <"$build_npmrc")"

step "buildah build $REPO_DIR/Dockerfile -> $APP_IMAGE (isolation $BUILDAH_ISOLATION, runtime $OCI_RUNTIME, host network for apt and the npm registry)"
buildah build \
  --runtime "$OCI_RUNTIME" \
  --isolation "$BUILDAH_ISOLATION" \
  --layers \
  --force-rm \
  --pull=never \
  --format docker \
  --network host \
  "${build_mounts[@]}" \
  --tag "$APP_IMAGE" \
  --file "$REPO_DIR/Dockerfile" \
  "$REPO_DIR"
buildah images "$APP_IMAGE"
done_step

$smoke || exit 0

# ---- 3. smoke run -------------------------------------------------------------------------------
data_dir="$(mktemp -d /tmp/lob-rtrl-data.XXXXXX)"
# The image runs as node (1000); a host directory bind-mounted over /data must be writable by it.
chown 1000:1000 "$data_dir"
podman rm -f "$SMOKE_CONTAINER" >/dev/null 2>&1 || true

step "podman run --network host -e LOB_RTRL_PORT=$SMOKE_PORT -v $data_dir:/data $APP_IMAGE"
# Loopback only: nothing outside this machine needs to reach the smoke instance.
podman --runtime "$OCI_RUNTIME" run -d --name "$SMOKE_CONTAINER" --network host \
  --ulimit nofile="$(ulimit -Hn)":"$(ulimit -Hn)" --ulimit nproc=4096:4096 \
  -e LOB_RTRL_HOST=127.0.0.1 -e LOB_RTRL_PORT="$SMOKE_PORT" \
  -v "$data_dir:/data" "$APP_IMAGE" >/dev/null
base_url="http://127.0.0.1:$SMOKE_PORT"
healthy=false
for _ in $(seq 1 30); do
  if curl -fsS "$base_url/healthz" >/dev/null 2>&1; then healthy=true; break; fi
  sleep 1
done
$healthy || { podman logs "$SMOKE_CONTAINER" | tail -40; fail "/healthz did not answer within 30 s"; }
echo "    /healthz: $(curl -fsS "$base_url/healthz")"
done_step

step "waiting up to 60 s for GET /v1/symbols/BTCUSDT/prediction (built-in demo feed)"
prediction=""
for _ in $(seq 1 60); do
  if prediction="$(curl -fsS "$base_url/v1/symbols/BTCUSDT/prediction" 2>/dev/null)"; then break; fi
  prediction=""
  sleep 1
done
[[ -n $prediction ]] || { podman logs "$SMOKE_CONTAINER" | tail -40; fail "no prediction within 60 s"; }
echo "    prediction: ${prediction:0:400}"
done_step

# The HEALTHCHECK probes 127.0.0.1:8080, the image default, so it cannot pass in the run above
# (host network, port moved). A second instance on the default port in its own, unconnected network
# namespace (--network none: no host port taken) exercises the probe as the image defines it.
step "running the image's HEALTHCHECK in a second instance on the default port 8080 (--network none)"
podman rm -f "$HEALTH_CONTAINER" >/dev/null 2>&1 || true
podman --runtime "$OCI_RUNTIME" run -d --name "$HEALTH_CONTAINER" --network none \
  --ulimit nofile="$(ulimit -Hn)":"$(ulimit -Hn)" --ulimit nproc=4096:4096 "$APP_IMAGE" >/dev/null
health=unhealthy
for _ in $(seq 1 30); do
  # podman logs an error about systemd timers here (no systemd in this sandbox); the probe still runs.
  if health="$(podman healthcheck run "$HEALTH_CONTAINER" 2>/dev/null)" && [[ -z $health || $health == healthy ]]; then
    health=healthy
    break
  fi
  sleep 1
done
echo "    HEALTHCHECK on port 8080: $health; with the port moved to $SMOKE_PORT (first instance): $(
  podman healthcheck run "$SMOKE_CONTAINER" 2>/dev/null || true)"
podman rm -f "$HEALTH_CONTAINER" >/dev/null
[[ $health == healthy ]] || fail "the image's HEALTHCHECK did not pass within 30 s"
done_step

step "podman stop (SIGTERM via tini) and checking the shutdown checkpoint in $data_dir"
podman stop --time 20 "$SMOKE_CONTAINER" >/dev/null
exit_code="$(podman inspect --format '{{.State.ExitCode}}' "$SMOKE_CONTAINER")"
podman logs "$SMOKE_CONTAINER" 2>&1 | grep -E 'shutting down|stopped cleanly|shutdown failed' | cut -c1-300 || true
echo "    exit code: $exit_code"
ls -l "$data_dir"
checkpoints="$(sqlite3 "$data_dir/lob-rtrl.sqlite" \
  "SELECT symbol || ' ticks=' || tick_count || ' bytes=' || size_bytes FROM checkpoints WHERE reason = 'shutdown'")"
echo "    shutdown checkpoints: ${checkpoints:-none}"
[[ $exit_code == 0 ]] || fail "the container exited with $exit_code, not 0"
[[ -n $checkpoints ]] || fail "no checkpoint with reason 'shutdown' in $data_dir/lob-rtrl.sqlite"
done_step

echo
echo "OK: $APP_IMAGE built and smoke-tested; data left in $data_dir; container $SMOKE_CONTAINER kept for 'podman logs'."
