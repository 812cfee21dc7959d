/**
 * A mirror container's entrypoint (POSIX sh: busybox ash and dash alike). distribution v3.1.1 in
 * proxy mode pings its upstream while it starts and panics when the upstream does not answer
 * (distribution#4038), so a mirror restarted during an upstream outage would lose everything it
 * cached exactly when it is needed. The supervisor probes the upstream's `/v2/` and runs
 * distribution in proxy mode while it answers, otherwise on the same storage without the proxy
 * section and read-only ("offline": what was cached pulls by digest, and by tag, since proxy
 * mode stores every tag it fetched as an ordinary tag link; anything else is a fast 404). It
 * keeps probing and switches either way without a deploy or restart.
 *
 * A switch starts the other mode's registry on a socket of its own, points the socket nginx
 * connects to (a symbolic link) at it with one rename, and only then stops the previous one
 * (SIGTERM: it drains for its `http.draintimeout`), so a switch refuses no request. The two
 * run side by side for that moment, hence a debug port each. The serving mode is written to
 * a status file the proxy serves, and an "offline" flag file exists only while offline.
 *
 * If the serving registry exits by itself the supervisor exits with its status, so the
 * container's restart policy handles a crash as it does for every other registry.
 */

export type MirrorMode = "proxy" | "offline";

export interface MirrorSupervisorInput {
  /** distribution's config with the proxy section (the upstream's credentials are in this file only). */
  readonly proxyConfigPath: string;
  /** The same storage without the proxy section, read-only. */
  readonly offlineConfigPath: string;
  /** The socket nginx connects to; each mode's registry listens on `<socketPath>.<mode>`. */
  readonly socketPath: string;
  /** The upstream's base URL (`https://registry-1.docker.io`); `/v2/` is probed. */
  readonly upstreamUrl: string;
  /** Seconds between probes. */
  readonly probeIntervalSeconds: number;
  /** Seconds a probe may take (connect and answer). */
  readonly probeTimeoutSeconds: number;
  /** Consecutive failed probes that switch a proxy-mode mirror to offline (one switches back). */
  readonly failuresToOffline: number;
  /** Seconds a starting registry gets to open its socket before the start counts as failed. */
  readonly startTimeoutSeconds: number;
}

/**
 * How the stack probes: every 5 s, 5 s per probe, offline after 2 failed probes in a row, back
 * to proxy mode at the first answer. So proxy → offline takes at most about 2 × (5 + 5) s plus a
 * start, offline → proxy at most about 5 + 5 s plus a start.
 */
export const MIRROR_PROBE = { probeIntervalSeconds: 5, probeTimeoutSeconds: 5, failuresToOffline: 2 } as const;

/** The JSON status file next to the socket, served by the proxy (see MirrorStatus). */
export function mirrorStatusPath(socketPath: string): string {
  return `${socketPath}.status`;
}

/** A file that exists only while the mirror serves offline; the proxy tests it (`if -f`). */
export function mirrorOfflineFlagPath(socketPath: string): string {
  return `${socketPath}.offline-flag`;
}

/** Where the registry of one mode listens. */
export function mirrorModeSocketPath(socketPath: string, mode: MirrorMode): string {
  return `${socketPath}.${mode}`;
}

/** What the status file holds. */
export interface MirrorStatus {
  readonly mode: MirrorMode;
  /** When this mode began (UTC, seconds). */
  readonly since: string;
  readonly upstream: string;
}

/** Offline mode's debug port: the proxy-mode registry may still hold `debugPort` during a switch. */
export function offlineDebugPort(debugPort: number): number {
  return debugPort + 1;
}

/**
 * The container's health check: the socket nginx uses serves (the link resolves to a live
 * socket) and the serving registry's storage is healthy, in either mode.
 */
export function mirrorHealthCommand(socketPath: string, debugPort: number): string {
  const probe = (port: number) => `wget -q -O /dev/null http://127.0.0.1:${port}/debug/health`;
  return `test -S ${shellQuote(socketPath)} && { ${probe(debugPort)} || ${probe(offlineDebugPort(debugPort))}; }`;
}

export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, "'\\''")}'`;
}

export function renderMirrorSupervisor(input: MirrorSupervisorInput): string {
  for (const [field, value] of Object.entries({
    probeIntervalSeconds: input.probeIntervalSeconds,
    probeTimeoutSeconds: input.probeTimeoutSeconds,
    failuresToOffline: input.failuresToOffline,
    startTimeoutSeconds: input.startTimeoutSeconds,
  })) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`mirror supervisor: ${field} must be a whole number ≥ 1, got ${value}`);
  }
  const q = shellQuote;
  const probeUrl = `${input.upstreamUrl.replace(/\/+$/, "")}/v2/`;
  return `set -u
proxy_config=${q(input.proxyConfigPath)}
offline_config=${q(input.offlineConfigPath)}
socket=${q(input.socketPath)}
status=${q(mirrorStatusPath(input.socketPath))}
offline_flag=${q(mirrorOfflineFlagPath(input.socketPath))}
upstream=${q(input.upstreamUrl)}
probe_url=${q(probeUrl)}

log() {
  echo "registry-stack mirror: $*" >&2
}

# 0 when the upstream answers /v2/ with any HTTP status below 500 (401 is the usual answer):
# only reachability counts here; proxy mode itself verifies TLS and logs in, and if it cannot
# connect it does not start and the mirror stays offline. busybox's own TLS (Debian's build)
# cannot finish a handshake with a Go TLS 1.2 server (alert 40: handshake failure), so an alert
# from the peer counts as an answer too. No wget -T (Debian's busybox 1.35 wget crashes on it):
# timeout bounds the whole probe.
upstream_answers() {
  out=$(timeout ${input.probeTimeoutSeconds} wget -S --no-check-certificate -O /dev/null "$probe_url" 2>&1)
  code=$(printf '%s\n' "$out" | sed -n 's/.*HTTP\\/[0-9.]* \\([1-5][0-9][0-9]\\).*/\\1/p' | tail -n 1)
  if [ -n "$code" ]; then
    [ "$code" -lt 500 ]
    return
  fi
  case "$out" in
    *"TLS error from peer"*) return 0 ;;
  esac
  return 1
}

# Starts mode $1's registry and waits for its socket; sets started_pid. 1 when it exits or
# opens no socket in time (proxy mode panics when the upstream went away meanwhile).
start() {
  listen="$socket.$1"
  if [ "$1" = proxy ]; then conf=$proxy_config; else conf=$offline_config; fi
  rm -f "$listen"
  registry serve "$conf" &
  started_pid=$!
  i=0
  while [ "$i" -lt ${input.startTimeoutSeconds * 10} ]; do
    if [ -S "$listen" ]; then
      # nginx's unprivileged workers connect to it; a umask of 0 would open up every data file too.
      chmod 0666 "$listen"
      return 0
    fi
    if ! kill -0 "$started_pid" 2>/dev/null; then
      wait "$started_pid"
      log "$1 mode did not start (exit $?)"
      return 1
    fi
    i=$((i + 1))
    sleep 0.1
  done
  kill -TERM "$started_pid" 2>/dev/null
  wait "$started_pid"
  log "$1 mode opened no socket within ${input.startTimeoutSeconds} s"
  return 1
}

write_status() {
  printf '{"mode":"%s","since":"%s","upstream":"%s"}\\n' "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$upstream" > "$status.tmp" && mv -f "$status.tmp" "$status"
}

mode=""
pid=""
# Serves mode $1: starts it, points the socket at it, then stops the previous registry.
switch_to() {
  start "$1" || return 1
  rm -f "$socket.link"
  ln -s "\${socket##*/}.$1" "$socket.link"
  mv -f "$socket.link" "$socket"
  if [ "$1" = offline ]; then : > "$offline_flag"; else rm -f "$offline_flag"; fi
  write_status "$1"
  previous=$pid
  previous_mode=$mode
  pid=$started_pid
  mode=$1
  log "serving in $1 mode (upstream $upstream)"
  if [ -n "$previous" ]; then
    kill -TERM "$previous" 2>/dev/null
    wait "$previous" 2>/dev/null
    rm -f "$socket.$previous_mode"
  fi
  return 0
}

stop() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  rm -f "$socket" "$socket.proxy" "$socket.offline" "$status" "$offline_flag"
  exit 0
}
trap stop TERM INT

rm -f "$socket" "$socket.link"
if upstream_answers && switch_to proxy; then
  :
else
  log "upstream $upstream does not answer /v2/: serving what is cached, read-only"
  switch_to offline || exit 1
fi

failed=0
while :; do
  sleep ${input.probeIntervalSeconds} &
  wait $!
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid"
    code=$?
    log "the $mode mode registry exited ($code)"
    rm -f "$socket" "$status" "$offline_flag"
    exit "$code"
  fi
  if upstream_answers; then
    failed=0
    if [ "$mode" = offline ]; then
      switch_to proxy || log "upstream answers again but proxy mode did not start: still offline"
    fi
  else
    failed=$((failed + 1))
    if [ "$mode" = proxy ] && [ "$failed" -ge ${input.failuresToOffline} ]; then
      log "upstream $upstream did not answer ${input.failuresToOffline} probes in a row: switching to offline"
      switch_to offline || log "offline mode did not start: still in proxy mode"
    fi
  fi
done
`;
}
