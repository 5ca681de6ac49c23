#!/usr/bin/env bash
# scout against the genuine Nightscout 15.0.7 in ../shared/nightscout (its README), on loopback:
# readings with a token and with an api-secret, a wrong token on a public site (served all the
# same; `validate --online` catches it with /api/v1/verifyauth), and a locked site
# (AUTH_DEFAULT_ROLES=denied) refusing a wrong token with 401. Skips, saying why, when
# ../shared/nightscout is absent or its install fails (it needs the npm registry the first time).
# Usage: tests/genuine/test_genuine_nightscout.sh [build dir, default build]
set -euo pipefail
cd "$(dirname "$0")/../.."
scout="${1:-build}/scout"
shared="$(cd .. && pwd)/shared/nightscout"
if [ ! -x "$shared/start.sh" ]; then
  echo "test_genuine_nightscout: SKIPPED: $shared/start.sh is absent" >&2
  exit 0
fi
fail() { echo "test_genuine_nightscout: FAILED: $*" >&2; exit 1; }
check() { local what="$1"; shift; "$@" || fail "$what"; echo "ok - $what"; }
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

secret=scout-test-secret
sha1=$(printf %s "$secret" | sha1sum | cut -d' ' -f1)
# start NAME PORT ROLES: starts one Nightscout, sets $base.
start() {
  local name="$1" port="$2" roles="$3"
  if ! API_SECRET="$secret" AUTH_DEFAULT_ROLES="$roles" AUTH_FAIL_DELAY=0 \
      timeout 600 "$shared/start.sh" "$port" "$((port + 1))" >"$work/$name.log" 2>&1; then
    tail -5 "$work/$name.log" >&2
    echo "test_genuine_nightscout: SKIPPED: the genuine Nightscout did not start" >&2
    exit 0
  fi
  local ns mongo
  ns=$(sed -n 's/^NS_PID=//p' "$work/$name.log")
  mongo=$(sed -n 's/^MONGO_PID=//p' "$work/$name.log")
  pids+=("$ns" "$mongo")
  base="http://127.0.0.1:$port"
}

start public 17451 readable
public="$base"
start locked 17461 denied
locked="$base"

for site in "$public" "$locked"; do
  now=$(($(date +%s) * 1000))
  body="["
  for i in 0 1 2 3 4 5; do
    date=$((now - 60000 - i * 300000))
    iso=$(date -u -d "@$((date / 1000))" +%Y-%m-%dT%H:%M:%S.000Z)
    body+="{\"type\":\"sgv\",\"sgv\":$((48 + i * 3)),\"date\":$date,\"dateString\":\"$iso\",\"direction\":\"SingleDown\"},"
  done
  body="${body%,}]"
  curl -sf -X POST -H "api-secret: $sha1" -H 'Content-Type: application/json' \
    -H 'Accept: application/json' "$site/api/v1/entries" -d "$body" >/dev/null ||
    fail "uploading entries to $site"
  curl -sf -X POST -H "api-secret: $sha1" -H 'Content-Type: application/json' \
    "$site/api/v2/authorization/subjects" -d '{"name":"scout reader","roles":["readable"]}' \
    >/dev/null || fail "creating a token on $site"
done
token_of() {
  curl -sf -H "api-secret: $sha1" "$1/api/v2/authorization/subjects" |
    python3 -c 'import json,sys; print([s["accessToken"] for s in json.load(sys.stdin) if s["name"]=="scout reader"][0])'
}
public_token=$(token_of "$public")
locked_token=$(token_of "$locked")

config() {  # config NAME URL AUTH-LINE
  cat >"$work/$1.yaml" <<YAML
units: mg/dL
state_file: $work/$1-state.json
providers: [{type: console}]
patients:
  - name: Alice
    timezone: UTC
    phone: "+15555550100"
    nightscout:
      url: $2
$3
    contacts: [{name: Bob, phone: "+15555550101"}]
YAML
  echo "$work/$1.yaml"
}
rc_of() { set +e; "$@" >"$work/out" 2>"$work/err"; local rc=$?; set -e; echo "$rc"; }

c=$(config token "$locked" "      token: $locked_token")
check "check with a token on a locked site reads the low (exit 2)" test "$(rc_of "$scout" check --config "$c")" = 2
check "  and says 48 mg/dL" grep -q "48 mg/dL" "$work/out"
check "validate --online accepts the token" test "$(rc_of "$scout" validate --online --config "$c")" = 0
c=$(config secret "$locked" "      api_secret: $secret")
check "check with an api_secret on a locked site (exit 2)" test "$(rc_of "$scout" check --config "$c")" = 2
check "validate --online accepts the api_secret" test "$(rc_of "$scout" validate --online --config "$c")" = 0
c=$(config wrong-locked "$locked" "      token: scoutreade-0123456789abcdef")
check "a wrong token on a locked site is UNKNOWN (exit 3)" test "$(rc_of "$scout" check --config "$c")" = 3
check "  naming the refusal" grep -q "refused the credentials (HTTP 401)" "$work/out"
c=$(config wrong-public "$public" "      token: scoutreade-0123456789abcdef")
check "a wrong token on a public site still reads (exit 2)" test "$(rc_of "$scout" check --config "$c")" = 2
check "validate --online catches it (exit 78)" test "$(rc_of "$scout" validate --online --config "$c")" = 78
check "  with verifyauth" grep -q "does not accept the token (verifyauth: UNAUTHORIZED)" "$work/err"
c=$(config good-public "$public" "      token: $public_token")
check "validate --online: a good token on a public site" test "$(rc_of "$scout" validate --online --config "$c")" = 0

# Incremental reads (SPEC §7): what scout relies on from Nightscout 15, then scout itself.
newest=$(curl -sf "$locked/api/v1/entries/sgv.json?count=1&token=$locked_token" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["date"])')
since=$(date -u -d "@$(((newest + 999) / 1000))" '+%a, %d %b %Y %H:%M:%S GMT')
incremental() {  # the request scout makes after the newest reading it holds: prints the dates
  local code
  code=$(curl -s -o "$work/inc.json" -w '%{http_code}' -H "If-Modified-Since: $since" \
    "$locked/api/v1/entries/sgv.json?count=36&token=$locked_token&find%5Bdate%5D%5B%24gt%5D=$newest")
  if [ "$code" = 304 ]; then return 0; fi
  [ "$code" = 200 ] || fail "incremental request answered HTTP $code"
  python3 -c 'import json,sys; print(" ".join(str(e["date"]) for e in json.load(open(sys.argv[1]))))' "$work/inc.json"
}
check "find[date][\$gt] with If-Modified-Since: nothing newer is no entry" test -z "$(incremental)"
c=$(config incremental "$locked" "      token: $locked_token")
sed -i 's/^units: mg\/dL$/units: mg\/dL\npoll: {interval: 10s, timeout: 5s}/' "$c"
"$scout" --log-level debug run --config "$c" >"$work/run.out" 2>"$work/run.err" &
run_pid=$!
pids+=("$run_pid")
wait_for() {  # wait_for PATTERN FILE: at most 40 s
  for _ in $(seq 1 400); do grep -q "$1" "$2" && return 0; sleep 0.1; done
  return 1
}
check "scout run reads the newest reading (48 mg/dL) at its first tick" wait_for "Alice: 48 mg/dL" "$work/run.err"
next=$((newest + 300000))
iso=$(date -u -d "@$((next / 1000))" +%Y-%m-%dT%H:%M:%S.000Z)
curl -sf -X POST -H "api-secret: $sha1" -H 'Content-Type: application/json' -H 'Accept: application/json' \
  "$locked/api/v1/entries" \
  -d "[{\"type\":\"sgv\",\"sgv\":41,\"date\":$next,\"dateString\":\"$iso\",\"direction\":\"SingleDown\"}]" \
  >/dev/null || fail "uploading a newer entry"
check "find[date][\$gt] then answers exactly the newer entry" test "$(incremental)" = "$next"
check "scout run sees the newer reading (41 mg/dL) at a later tick" wait_for "Alice: 41 mg/dL" "$work/run.err"
kill "$run_pid" 2>/dev/null || true
wait "$run_pid" 2>/dev/null || true
check "  and no poll of it failed" bash -c "! grep -q 'cannot read the Nightscout' '$work/run.err'"
echo "test_genuine_nightscout: all passed"
