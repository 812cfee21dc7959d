import { ChildProcess, spawn } from "child_process";

/**
 * Bounded child processes that the bench can always stop: each runs in its own process group
 * (so `npx cdktf synth` → node → npx → ts-node can be stopped as a whole), is killed by its
 * pid (the group id) on timeout, and every one still running is killed when the bench exits
 * or aborts. Never kills by name.
 */

export interface RunOptions {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string | Buffer;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, in seconds. */
  seconds: number;
}

const running = new Set<ChildProcess>();
const MAX_CAPTURE = 4 * 1024 * 1024;

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Kills every child (and its process group) the bench started and that is still running. */
export function killAllChildren(): void {
  for (const child of running) killGroup(child);
  running.clear();
}

process.on("exit", killAllChildren);

export function run(command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    running.add(child);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (d: Buffer) => {
      if (stdout.length < MAX_CAPTURE) stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      if (stderr.length < MAX_CAPTURE) stderr += d.toString();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, options.timeoutMs);
    const shown = [command, ...args].join(" ");
    child.on("error", (err) => {
      clearTimeout(timer);
      running.delete(child);
      reject(new Error(`${shown}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      // A group leader that exited may leave members behind (e.g. a timed-out grandchild).
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // group already empty
        }
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const tail = (s: string) => (s.length > 3000 ? "…" + s.slice(-3000) : s);
      if (timedOut) reject(new Error(`${shown}: timed out after ${options.timeoutMs} ms\n${tail(stderr)}`));
      else if (code !== 0) reject(new Error(`${shown}: exit ${code ?? signal}\n${tail(stderr || stdout)}`));
      else resolve({ stdout, stderr, seconds });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
}
