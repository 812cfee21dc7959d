/**
 * The cluster proxy's entrypoint (POSIX sh): a loop that mirrors the collector's hold state into
 * a flag file on the task's own tmpfs, then nginx, which holds writes while the file exists
 * (renderers/nginx/write-hold.ts, as on one host). The flag exists from the start and whenever the
 * collector does not answer 200: a collector that cannot be asked may be collecting (fail closed
 * for writes; reads never depend on it).
 */
export interface WriteHoldPollerInput {
  /** 200 while writes are allowed (the collector's /debug/health). */
  readonly stateUrl: string;
  /** The flag nginx tests; its folder is writable by the task's root and readable by the workers. */
  readonly flagFile: string;
  readonly intervalSeconds: number;
  /** How long one poll may take before it counts as "held". */
  readonly timeoutSeconds: number;
  /** nginx's command line, exec'd after the loop starts (nginx becomes the task's first process). */
  readonly nginxCommand: readonly string[];
}

export function renderWriteHoldPoller(input: WriteHoldPollerInput): string {
  const q = (value: string) => `'${value.replace(/'/g, "'\\''")}'`;
  return `set -u
flag=${q(input.flagFile)}
url=${q(input.stateUrl)}
: > "$flag"
(
  while :; do
    # timeout, not wget -T: Debian's busybox 1.35 wget crashes with -T.
    if timeout ${input.timeoutSeconds} wget -q -O /dev/null "$url" 2>/dev/null; then rm -f "$flag"; else : > "$flag"; fi
    sleep ${input.intervalSeconds}
  done
) &
exec ${input.nginxCommand.map(q).join(" ")}
`;
}
