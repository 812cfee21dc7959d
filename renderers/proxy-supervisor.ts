/**
 * The proxy container's entrypoint: nginx, plus a loop that reloads it when a deploy has
 * uploaded a new configuration into its (stable) config volume. A reload keeps every
 * connection: the old workers finish what they serve while new ones take new connections, so
 * a configuration change (users, roles, a certificate, a new registry socket) interrupts
 * nothing, where replacing the container refused connections until the new one was up.
 *
 * The deploy uploads the files and, among them, a marker naming the generation and every file's
 * checksum. kreuzwerker/docker uploads a set, one file at a time, in no fixed order, and the
 * engine writes each one by removing the old file and writing the new one, unchanged files
 * included: a file can be missing or half written at any moment of an upload. So nginx never
 * reads the uploaded folder. The loop copies it, and only a copy in which every file matches the
 * marker is served: the served link is pointed at it, the configuration is tested (`nginx -t`),
 * applied (SIGHUP: nginx's reload) and, once nginx answers it at the health server, written to
 * the status file that the deploy's reload check waits for. A configuration nginx refuses is
 * never applied: the link goes back, the status file says so with nginx's reason, and the
 * deploy fails.
 */

export interface ProxySupervisorInput {
  /** The folder the deploy uploads into; the marker's checksum paths are relative to it. */
  readonly uploadDirectory: string;
  /** The marker inside uploadDirectory: the generation on its first line, then `sha256sum` lines of every uploaded file. */
  readonly markerName: string;
  /** nginx.conf inside uploadDirectory. */
  readonly configName: string;
  /**
   * A symbolic link to the verified copy nginx serves (on the container's tmpfs; the copies are
   * made next to it). Every path in nginx.conf to an uploaded file goes through this link.
   */
  readonly servedDirectory: string;
  /**
   * Written when a generation serves (`<generation>`) or is refused (`refused <generation>`,
   * then the reason).
   */
  readonly statusPath: string;
  /** Answers the generation nginx serves (NginxConfInput.generation). */
  readonly generationUrl: string;
  /**
   * How long nginx may take to answer a new generation after the reload signal before it counts
   * as refused: the reload check's own timeout, since a busy host can take more than a few seconds.
   */
  readonly answerTimeoutSeconds: number;
}

/** Status file line of a generation nginx refused. */
export const REFUSED_PREFIX = "refused";

export function renderProxySupervisor(input: ProxySupervisorInput): string {
  const q = (value: string) => `'${value.replace(/'/g, "'\\''")}'`;
  return `set -u
uploaded=${q(input.uploadDirectory)}
marker=${q(input.markerName)}
served=${q(input.servedDirectory)}
conf="$served"/${q(input.configName)}
copies="$served.copies"
status=${q(input.statusPath)}
url=${q(input.generationUrl)}

# The status file: its arguments, one per line.
record() {
  printf '%s\\n' "$@" > "$status.tmp" && mv -f "$status.tmp" "$status"
}

# The generation the uploaded marker names (empty while there is none).
uploaded_generation() {
  head -n 1 "$uploaded/$marker" 2>/dev/null || true
}

# True when a copy of the uploaded folder, $copies/$1, has every file the copy's marker lists
# with its checksum, and that marker names generation $1.
copy_of() {
  rm -rf "$copies/$1" "$copies.sums" && mkdir -p "$copies" && cp -pR "$uploaded" "$copies/$1" 2>/dev/null \\
    && [ "$(head -n 1 "$copies/$1/$marker")" = "$1" ] \\
    && tail -n +2 "$copies/$1/$marker" > "$copies.sums" \\
    && (cd "$copies/$1" && sha256sum -c "$copies.sums") > /dev/null 2>&1
}

# Points the served link at the copy of generation $1 (a rename: never missing).
serve_copy() {
  ln -sfn "$copies/$1" "$served.next" && mv -f -T "$served.next" "$served"
}

# Removes every copy but generation $1's.
keep_only() {
  for copy in "$copies"/*; do
    [ "$copy" = "$copies/$1" ] || rm -rf "$copy"
  done
}

# Hundredths of a second since boot (busybox date has whole seconds only).
hundredths() {
  read -r up _ < /proc/uptime
  echo "\${up%.*}\${up#*.}"
}

# Waits (${input.answerTimeoutSeconds} s at most) until nginx answers generation $1; $waited: how long, in hundredths of a second.
serving() {
  start=$(hundredths)
  while :; do
    answer=$(wget -q -O - "$url" 2>/dev/null)
    waited=$(($(hundredths) - start))
    [ "$answer" = "$1" ] && return 0
    [ "$waited" -ge ${input.answerTimeoutSeconds * 100} ] && return 1
    sleep 0.1
  done
}

# Records whether nginx answers generation $1 (loaded at start or by a reload).
answered() {
  if serving "$1"; then
    echo "registry-stack: serving configuration $1 (nginx answered it after $((waited / 100)).$((waited % 100 / 10)) s)" >&2
    record "$1"
    keep_only "$1"
  else
    echo "registry-stack: nginx did not answer configuration $1 within ${input.answerTimeoutSeconds} s" >&2
    record "${REFUSED_PREFIX} $1" "nginx did not answer it within ${input.answerTimeoutSeconds} s after the reload signal: see docker logs of the proxy"
  fi
}

# A container started while a deploy uploads waits for the upload to complete.
tries=0
until generation=$(uploaded_generation) && [ -n "$generation" ] && copy_of "$generation"; do
  [ $((tries % 10)) -eq 0 ] && echo "registry-stack: waiting until the uploaded files match the marker $uploaded/$marker" >&2
  tries=$((tries + 1))
  sleep 1
done
serve_copy "$generation"

nginx -e stderr -c "$conf" -g 'daemon off;' &
nginx_pid=$!
# docker stop sends SIGQUIT (nginx's graceful stop) to this shell: pass it on.
trap 'kill -QUIT "$nginx_pid" 2>/dev/null' QUIT
trap 'kill -TERM "$nginx_pid" 2>/dev/null' TERM INT
answered "$generation"
handled=$generation

while kill -0 "$nginx_pid" 2>/dev/null; do
  wanted=$(uploaded_generation)
  if [ -n "$wanted" ] && [ "$wanted" != "$handled" ] && copy_of "$wanted"; then
    previous=$(basename "$(readlink "$served")")
    serve_copy "$wanted"
    if reason=$(nginx -e stderr -q -t -c "$conf" 2>&1); then
      kill -HUP "$nginx_pid"
      answered "$wanted"
    else
      serve_copy "$previous"
      rm -rf "\${copies:?}/$wanted"
      echo "registry-stack: nginx refused configuration $wanted; still serving $previous: $reason" >&2
      record "${REFUSED_PREFIX} $wanted" "nginx -t: $reason"
    fi
    handled=$wanted
  fi
  sleep 1 &
  wait $! 2>/dev/null
done
wait "$nginx_pid"
`;
}

/**
 * The deploy's reload check: a one-shot container that waits until the proxy serves
 * `generation` (or refused it), so that Terraform goes on (and removes the registry instances
 * the old configuration pointed to) only once the new configuration serves. Exit 0 when it
 * serves, 1 when refused (printing the supervisor's reason) or not within `timeoutSeconds`.
 */
export function renderReloadCheck(statusPath: string, generation: string, timeoutSeconds: number, proxyName: string): string {
  return `i=0
while [ "$i" -lt ${timeoutSeconds * 5} ]; do
  got=$(head -n 1 '${statusPath}' 2>/dev/null || true)
  if [ "$got" = '${generation}' ]; then echo "proxy ${proxyName} serves configuration ${generation}"; exit 0; fi
  if [ "$got" = '${REFUSED_PREFIX} ${generation}' ]; then
    echo "proxy ${proxyName} refused configuration ${generation}: $(tail -n +2 '${statusPath}')" >&2
    exit 1
  fi
  i=$((i + 1))
  sleep 0.2
done
echo "proxy ${proxyName} did not load configuration ${generation} within ${timeoutSeconds} s (status: \${got:-none}): see docker logs ${proxyName}" >&2
exit 1
`;
}
