#!/usr/bin/env bash
# A throwaway single-node Ceph cluster with the RADOS Gateway (S3) on 127.0.0.1,
# from Debian's packages, for running Lore's S3 tests against a production S3.
#
#   .ci/rgw.sh install   apt-get install radosgw ceph-mon ceph-osd (when missing; needs root)
#   .ci/rgw.sh start     one monitor, one OSD (memstore: data lives in memory), radosgw
#                        over HTTP and HTTPS (self-signed certificate made now), a test user
#   .ci/rgw.sh env http|https   prints the LORE_TEST_S3_* settings to `eval` or `export`
#   .ci/rgw.sh stop      stops every daemon by its pid file and removes the state directory
#   .ci/rgw.sh test [pytest args]   start, run the S3 tests against RGW over HTTP and then
#                        HTTPS (LORE_TEST_S3_ENDPOINT), stop (also on failure or Ctrl-C);
#                        what `make test-rgw` runs
#
# Settings (environment): LORE_RGW_DIR (state, default /tmp/lore-rgw), LORE_RGW_HTTP_PORT
# (17480), LORE_RGW_HTTPS_PORT (17443), LORE_RGW_MON_PORT (13300, msgr2). Every port is
# below 32768 so it cannot collide with an ephemeral port; the OSD binds in 16800-16899.
#
# Facts this relies on (Ceph 16.2, Debian bookworm): no DBStore/posix backend, so a mon
# and an OSD with osd_objectstore = memstore; auth none; radosgw needs
# ms_mon_client_mode = crc in its own section or it waits 5 minutes on "failed to fetch
# mon config"; SSE over plain HTTP needs rgw_crypt_require_ssl = false; the "testing"
# KMS backend serves the keys listed in rgw_crypt_s3_kms_encryption_keys.
set -euo pipefail

DIR=${LORE_RGW_DIR:-/tmp/lore-rgw}
HTTP_PORT=${LORE_RGW_HTTP_PORT:-17480}
HTTPS_PORT=${LORE_RGW_HTTPS_PORT:-17443}
MON_PORT=${LORE_RGW_MON_PORT:-13300}
ACCESS_KEY=lore-test-access-key
SECRET_KEY=lore-test-secret-key-0123456789abcdef
# The test KMS: key id -> base64 of 32 bytes. Tests use sse_kms_key_id="alias/lore".
KMS_KEYS="alias/lore=$(printf 'lore-test-kms-key-32-bytes-long!' | base64) lore-key-2=$(printf 'another-test-kms-key-of-32-bytes' | base64)"
CONF=$DIR/ceph.conf
CEPH=(ceph -c "$CONF" --connect-timeout 20)

log() { printf 'rgw.sh: %s\n' "$*" >&2; }
running() { [ -f "$DIR/run/client.rgw.lore.pid" ] && kill -0 "$(cat "$DIR/run/client.rgw.lore.pid")" 2>/dev/null; }
die() {
  log "$*"
  for f in "$DIR"/log/*.log "$DIR"/log/*.out; do [ -f "$f" ] && { log "--- tail of $f"; tail -n 30 "$f" >&2; }; done
  exit 1
}

install() {
  local tool missing=0
  for tool in radosgw ceph-mon ceph-osd openssl; do command -v "$tool" >/dev/null || missing=1; done
  [ $missing = 1 ] || return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    radosgw ceph-mon ceph-osd openssl >/dev/null
}

wait_for() { # seconds, description, command...
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${limit}s waiting for $what"
    sleep 0.5
  done
}

start() {
  install
  if running; then
    log "already running (state in $DIR); run '$0 stop' first"
    exit 1
  fi
  stop # whatever a killed run left behind

  mkdir -p "$DIR"/{mon,osd0,run,log,tls}
  local fsid
  fsid=$(cat /proc/sys/kernel/random/uuid)

  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$DIR/tls/key.pem" -out "$DIR/tls/cert.pem" 2>/dev/null

  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$MON_PORT
public_addr = 127.0.0.1
ms_bind_msgr1 = false
ms_bind_port_min = 16800
ms_bind_port_max = 16899
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
auth_allow_insecure_global_id_reclaim = true
run_dir = $DIR/run
pid_file = $DIR/run/\$name.pid
admin_socket = $DIR/run/\$name.asok
log_file = $DIR/log/\$name.log
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
osd_objectstore = memstore
memstore_device_bytes = 4294967296
debug_ms = 0

[mon.a]
mon_data = $DIR/mon

[osd.0]
osd_data = $DIR/osd0
osd_max_object_name_len = 460
osd_max_object_namespace_len = 64

[client.rgw.lore]
ms_mon_client_mode = crc
rgw_frontends = beast tcp_nodelay=1 endpoint=127.0.0.1:$HTTP_PORT ssl_endpoint=127.0.0.1:$HTTPS_PORT ssl_certificate=$DIR/tls/cert.pem ssl_private_key=$DIR/tls/key.pem
rgw_dns_name = localhost
rgw_crypt_require_ssl = false
rgw_crypt_s3_kms_backend = testing
rgw_crypt_s3_kms_encryption_keys = $KMS_KEYS
rgw_enable_usage_log = false
rgw_thread_pool_size = 64
EOF

  local t0=$SECONDS
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap" >"$DIR/log/mkfs-mon.out" 2>&1 ||
    die "ceph-mon --mkfs failed: $(cat "$DIR/log/mkfs-mon.out")"
  ceph-mon -c "$CONF" -i a 2>>"$DIR/log/mon-start.out" || die "ceph-mon did not start"
  wait_for 30 "the monitor" "${CEPH[@]}" mon stat

  local uuid id
  uuid=$(cat /proc/sys/kernel/random/uuid)
  id=$("${CEPH[@]}" osd new "$uuid")
  [ "$id" = 0 ] || die "expected osd id 0, got $id"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >"$DIR/log/mkfs-osd.out" 2>&1 ||
    die "ceph-osd --mkfs failed: $(cat "$DIR/log/mkfs-osd.out")"
  ceph-osd -c "$CONF" -i 0 2>>"$DIR/log/osd-start.out" || die "ceph-osd did not start"
  wait_for 60 "the OSD to be up" sh -c "${CEPH[*]} osd dump | grep -q '^osd.0 up'"

  # Pools radosgw would create on the first bucket and the first object (about 4 s there).
  local pool
  for pool in default.rgw.buckets.index default.rgw.buckets.data; do
    "${CEPH[@]}" osd pool create "$pool" 8 8 >/dev/null 2>&1 &&
      "${CEPH[@]}" osd pool application enable "$pool" rgw >/dev/null 2>&1 || die "could not create pool $pool"
  done
  radosgw -c "$CONF" -n client.rgw.lore 2>>"$DIR/log/rgw-start.out" || die "radosgw did not start"
  wait_for 120 "radosgw on :$HTTP_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$HTTP_PORT"
  radosgw-admin -c "$CONF" user create --uid lore-test --display-name "Lore tests" \
    --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" >/dev/null ||
    die "radosgw-admin user create failed"
  wait_for 30 "radosgw on :$HTTPS_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$HTTPS_PORT"
  log "Ceph RGW $(radosgw --version | awk '{print $3}') up in $((SECONDS - t0))s:" \
    "http://127.0.0.1:$HTTP_PORT and https://127.0.0.1:$HTTPS_PORT (state in $DIR)"
}

env_for() { # http | https
  local scheme=${1:-http}
  case $scheme in
    http) echo "export LORE_TEST_S3_ENDPOINT=http://127.0.0.1:$HTTP_PORT" ;;
    https)
      echo "export LORE_TEST_S3_ENDPOINT=https://127.0.0.1:$HTTPS_PORT"
      echo "export LORE_TEST_S3_CA_BUNDLE=$DIR/tls/cert.pem"
      ;;
    *) die "env: say http or https" ;;
  esac
  echo "export LORE_TEST_S3_ACCESS_KEY=$ACCESS_KEY"
  echo "export LORE_TEST_S3_SECRET_KEY=$SECRET_KEY"
  echo "export LORE_TEST_S3_REGION=us-east-1"
  echo "export LORE_TEST_S3_KMS_KEY_ID=alias/lore"
}

stop() {
  local name pid
  for name in client.rgw.lore osd.0 mon.a; do
    [ -f "$DIR/run/$name.pid" ] || continue
    pid=$(cat "$DIR/run/$name.pid")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
      fi
    fi
    rm -f "$DIR/run/$name.pid"
  done
  [ -d "$DIR" ] || return 0
  if [ -e "$DIR/ceph.conf" ] || [ -z "$(ls -A "$DIR")" ]; then
    rm -rf "$DIR"
  else
    log "left $DIR alone: it is not a state directory of this script"
  fi
}

# The tests that prove Lore on a production S3: the tracker contract, concurrency, faults
# (event hooks and the fault proxy), the conditional-write self-check, the request budget,
# leases (a worker killed with SIGKILL) and the compatibility regressions of issue 13.
RGW_TESTS=(
  tests/core/test_tracker_contract.py
  tests/core/test_concurrency.py
  tests/core/test_faults.py
  tests/core/test_reliability.py
  tests/core/test_conditional_check.py
  tests/core/test_budget.py
  tests/core/test_leases.py
  tests/core/test_s3_compat.py
)

run_tests() {
  local pytest=${PYTEST:-.venv/bin/pytest} status=0 scheme t0
  t0=$SECONDS
  if running; then
    log "using the RGW already running (state in $DIR); '$0 stop' stops it"
  else
    trap stop EXIT
    start
    log "start-up took $((SECONDS - t0))s"
  fi
  for scheme in http https; do
    t0=$SECONDS
    log "pytest against Ceph RGW over ${scheme^^}"
    (
      eval "$(env_for "$scheme")"
      "$pytest" -q -p no:cacheprovider "${RGW_TESTS[@]}" "$@"
    ) || status=1
    log "RGW over ${scheme^^}: $((SECONDS - t0))s"
  done
  return $status
}

case ${1:-} in
  install) install ;;
  start) start ;;
  stop) stop ;;
  env) env_for "${2:-http}" ;;
  test)
    shift
    run_tests "$@"
    ;;
  *)
    echo "usage: $0 install|start|stop|env [http|https]|test [pytest args]" >&2
    exit 2
    ;;
esac
