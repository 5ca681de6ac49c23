#!/usr/bin/env bash
# The Debian package end to end (SPEC §7), as root on this machine: install, the files and
# their owners, the unit (systemd-analyze verify and security), the service's own command run
# as the user scout against a loopback Nightscout, `scout status` and `scout snooze` on it,
# an upgrade that keeps a changed conffile, and a purge that leaves nothing behind.
# Usage: tests/package/test_package.sh [build dir]   (needs root; CI runs it after scripts/test
#   with build/, packaging the binary the suite just tested; default: scripts/package's own)
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
  echo "test_package: SKIPPED: needs root (dpkg -i into this machine)" >&2
  exit 0
fi
fail() { echo "test_package: FAILED: $*" >&2; exit 1; }
check() { local what="$1"; shift; "$@" || fail "$what"; echo "ok - $what"; }

work=$(mktemp -d)
package_args=()
[ $# -ge 1 ] && package_args=(--build-dir "$1")
pkgdir="${1:-build-package}"
# The package, and the same files one version later for the upgrade.
built=$(scripts/package ${package_args[@]+"${package_args[@]}"} --version 0.1.0+upgrade1 | tail -n 1)
cp "$built" "$work/upgrade.deb"
built=$(scripts/package ${package_args[@]+"${package_args[@]}"} | tail -n 1)
cp "$built" "$work/scout.deb"
ls "$pkgdir"/scout-dbgsym_*.ddeb >/dev/null 2>&1 || fail "no debug symbols package (scout-dbgsym)"
deb="$work/scout.deb"
deb2="$work/upgrade.deb"
echo "ok - packages: $built, its upgrade and $(ls "$pkgdir"/*.ddeb)"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  dpkg --purge scout >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
dpkg --purge scout >/dev/null 2>&1 || true

export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "$deb" >/dev/null 2>"$work/apt.err" || { cat "$work/apt.err" >&2; fail "apt-get install"; }
echo "ok - installed"

check "system user scout" id scout
check "scout --version" sh -c '/usr/bin/scout --version | grep -q "^scout 0.1.0"'
check "the binary is stripped" sh -c 'file -L /usr/bin/scout | grep -q ", stripped"'
perm() { stat -c '%U:%G %a' "$1"; }
check "/etc/scout/scout.yaml is root:scout 0640" test "$(perm /etc/scout/scout.yaml)" = "root:scout 640"
check "/etc/default/scout is root:scout 0640" test "$(perm /etc/default/scout)" = "root:scout 640"
check "/var/lib/scout belongs to scout" test "$(stat -c %U /var/lib/scout)" = "scout"
for f in /usr/share/man/man1/scout.1.gz /usr/share/man/man5/scout.yaml.5.gz \
         /usr/share/bash-completion/completions/scout /lib/systemd/system/scout.service \
         /usr/share/doc/scout/copyright /usr/share/doc/scout/SPEC.md \
         /usr/share/doc/scout/examples/scout.cron /etc/logrotate.d/scout; do
  check "installs $f" test -f "$f"
done
check "the conffiles are registered" sh -c 'dpkg-query -W -f="\${Conffiles}" scout | grep -q /etc/scout/scout.yaml'
check "enables nothing" test ! -e /etc/systemd/system/multi-user.target.wants/scout.service
check "systemd-analyze verify" systemd-analyze verify /lib/systemd/system/scout.service
exposure=$(systemd-analyze security --offline=yes /lib/systemd/system/scout.service 2>/dev/null |
  sed -n 's/.*Overall exposure level for scout.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security: exposure $exposure <= 1.4" awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 1.4) }'
check "the package's config is refused until filled in (exit 78)" sh -c \
  'runuser -u scout -- /usr/bin/scout validate --config /etc/scout/scout.yaml >/dev/null 2>&1; [ $? -eq 78 ]'

# A loopback Nightscout (the demo's replay server) and a filled-in config, as a user would.
build/nightscout-replay examples/demo-trace.json --start +95m --speed 1 >"$work/ns.out" 2>&1 &
pids+=("$!")
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/^listening on \(http[^ ]*\).*/\1/p' "$work/ns.out" | head -n 1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || fail "the replay Nightscout did not start"
cat >/etc/scout/scout.yaml <<YAML
units: mg/dL
poll: {interval: 10s, timeout: 5s}
state_file: /var/lib/scout/state.json
journal_file: /var/lib/scout/journal.jsonl
providers: [{type: console, answer: never}]
defaults:
  escalation:
    urgent: [{after: 0s, call: [patient]}, {after: 30m, call: [contacts]}]
    warning: [{after: 0s, call: [patient]}, {after: 30m, call: [contacts]}]
patients:
  - name: Alice
    timezone: UTC
    phone: "+15555550100"
    nightscout: {url: "\${NIGHTSCOUT_URL}"}
    contacts: [{name: Bob, phone: "+15555550101"}]
YAML
echo "NIGHTSCOUT_URL=$url" >>/etc/default/scout
check "validate as the user scout, with /etc/default/scout" sh -c \
  'set -a; . /etc/default/scout; set +a; runuser -u scout -- /usr/bin/scout validate --config /etc/scout/scout.yaml'
# The unit's ExecStart, as the unit runs it (user scout, its environment file).
( set -a; . /etc/default/scout; set +a
  exec runuser -u scout -- /usr/bin/scout run --config /etc/scout/scout.yaml ) >"$work/run.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 100); do
  [ -f /var/lib/scout/state.json.d/status.json ] && break
  sleep 0.1
done
set +e
/usr/bin/scout status >"$work/status.out" 2>&1
status_rc=$?
set -e
cat "$work/status.out"
check "status shows Alice (exit 0-2)" sh -c "grep -q '^Alice: ' '$work/status.out' && [ $status_rc -le 2 ]"
if grep -q "LOW\|HIGH" "$work/status.out"; then
  check "snooze reaches the running service within a second" \
    /usr/bin/scout snooze Alice 30m --by ci --wait 1
else
  # No alarm in this stretch of the trace: the service still answers within a second (exit 1:
  # nothing to snooze).
  set +e; /usr/bin/scout snooze Alice 30m --by ci --wait 1; rc=$?; set -e
  check "snooze is answered by the running service within a second (exit $rc)" test "$rc" -eq 1
fi
check "scout log reads the journal" sh -c '/usr/bin/scout log --since -1h >/dev/null'
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
unset 'pids[-1]'

# Upgrade: a changed conffile is kept, the owners stay, the state stays.
echo "# changed by the admin" >>/etc/scout/scout.yaml
dpkg -i --force-confold "$deb2" >/dev/null || fail "upgrade"
check "upgraded to 0.1.0+upgrade1" test "$(dpkg-query -W -f='${Version}' scout)" = "0.1.0+upgrade1"
check "the changed config is kept" grep -q "changed by the admin" /etc/scout/scout.yaml
check "and stays root:scout 0640" test "$(perm /etc/scout/scout.yaml)" = "root:scout 640"
check "the state survives the upgrade" test -f /var/lib/scout/state.json

# Purge: nothing is left but the system user.
dpkg --purge scout >/dev/null || fail "purge"
for f in /usr/bin/scout /etc/scout /etc/default/scout /var/lib/scout /var/log/scout \
         /lib/systemd/system/scout.service /usr/share/man/man1/scout.1.gz; do
  check "purge removes $f" test ! -e "$f"
done
echo "test_package: all passed"
