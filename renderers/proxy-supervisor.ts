/**
 * The proxy container's entrypoint: nginx, plus a loop that reloads it when a deploy has
 * uploaded a new configuration into its (stable) config volume. A reload keeps every
 * connection: the old workers finish what they serve while new ones take new connections, so
 * a configuration change (users, roles, a certificate, a new registry socket) interrupts
 * nothing, where replacing the container refused connections until the new one was up.
 *
 * The deploy uploads the files and, among them, a marker naming the generation and every file's
 * checksum (kreuzwerker/docker uploads a set, one file at a time, in no fixed order): the loop
 * acts once every file matches the marker. A new generation is tested (`nginx -t`), applied (SIGHUP: nginx's reload) and, once nginx answers it
 * at the health server, written to the status file that the deploy's reload check waits for.
 * A configuration nginx refuses is never applied: the status file says so and the deploy fails.
 */

export interface ProxySupervisorInput {
  /** The folder of the uploaded files; the marker's checksum paths are relative to it. */
  readonly configDirectory: string;
  /** nginx.conf inside the container. */
  readonly configPath: string;
  /**
   * The uploaded marker: the generation on its first line, then `sha256sum` lines of every
   * uploaded file (paths relative to configDirectory).
   */
  readonly generationPath: string;
  /** Written when a generation serves (`<generation>`) or is refused (`refused <generation>`). */
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
dir=${q(input.configDirectory)}
conf=${q(input.configPath)}
marker=${q(input.generationPath)}
status=${q(input.statusPath)}
url=${q(input.generationUrl)}

record() {
  printf '%s\\n' "$1" > "$status.tmp" && mv -f "$status.tmp" "$status"
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

nginx -e stderr -c "$conf" -g 'daemon off;' &
nginx_pid=$!
# docker stop sends SIGQUIT (nginx's graceful stop) to this shell: pass it on.
trap 'kill -QUIT "$nginx_pid" 2>/dev/null' QUIT
trap 'kill -TERM "$nginx_pid" 2>/dev/null' TERM INT

# True when every file the marker lists has the checksum it gives.
complete() {
  tail -n +2 "$marker" > /tmp/registry-stack-sums 2>/dev/null && (cd "$dir" && sha256sum -c /tmp/registry-stack-sums) > /dev/null 2>&1
}

served=""
while kill -0 "$nginx_pid" 2>/dev/null; do
  wanted=$(head -n 1 "$marker" 2>/dev/null || true)
  if [ -n "$wanted" ] && [ "$wanted" != "$served" ] && complete; then
    if [ -n "$served" ]; then
      if nginx -e stderr -q -t -c "$conf"; then
        kill -HUP "$nginx_pid"
      else
        echo "registry-stack: nginx refused configuration $wanted; still serving $served" >&2
        record "${REFUSED_PREFIX} $wanted"
        served=$wanted
        continue
      fi
    fi
    if serving "$wanted"; then
      echo "registry-stack: serving configuration $wanted (nginx answered it after $((waited / 100)).$((waited % 100 / 10)) s)" >&2
      record "$wanted"
    else
      echo "registry-stack: nginx did not answer configuration $wanted within ${input.answerTimeoutSeconds} s; still serving $served" >&2
      record "${REFUSED_PREFIX} $wanted"
    fi
    served=$wanted
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
 * serves, 1 when refused or not within `timeoutSeconds`.
 */
export function renderReloadCheck(statusPath: string, generation: string, timeoutSeconds: number, proxyName: string): string {
  return `i=0
while [ "$i" -lt ${timeoutSeconds * 5} ]; do
  got=$(cat '${statusPath}' 2>/dev/null || true)
  if [ "$got" = '${generation}' ]; then echo "proxy ${proxyName} serves configuration ${generation}"; exit 0; fi
  if [ "$got" = '${REFUSED_PREFIX} ${generation}' ]; then echo "proxy ${proxyName} refused configuration ${generation}: see docker logs ${proxyName}" >&2; exit 1; fi
  i=$((i + 1))
  sleep 0.2
done
echo "proxy ${proxyName} did not load configuration ${generation} within ${timeoutSeconds} s (status: \${got:-none}): see docker logs ${proxyName}" >&2
exit 1
`;
}
