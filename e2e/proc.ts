import { spawn } from "child_process";

export interface RunOptions {
  /** Kill the command (SIGKILL) after this long. Every command is bounded. */
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the command's stdin, which is then closed. */
  input?: string | Buffer;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(message);
    this.name = "CommandError";
  }
}

const MAX_CAPTURE = 1024 * 1024;

function tail(text: string, max = 4000): string {
  return text.length > max ? "…" + text.slice(text.length - max) : text;
}

/** Process groups of commands still running (see killRunningCommands). */
const running = new Set<number>();

function killGroup(pid: number): void {
  try {
    // The child leads its own process group: this also reaches what it started (npx → node → ts-node).
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/**
 * SIGKILLs every command started by run() that is still running, with whatever it started.
 * For an aborted run; also done when this process exits.
 */
export function killRunningCommands(): number {
  const pids = [...running];
  for (const pid of pids) killGroup(pid);
  running.clear();
  return pids.length;
}
process.on("exit", () => killRunningCommands());

/**
 * Runs a command without a shell; rejects with its stderr on non-zero exit or timeout. The
 * command gets its own process group, so a timeout kills its children too.
 */
export function run(command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    const pid = child.pid;
    if (pid !== undefined) running.add(pid);
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
      if (pid !== undefined) killGroup(pid);
      else child.kill("SIGKILL");
    }, options.timeoutMs);
    const shown = [command, ...args].join(" ");
    child.on("error", (err) => {
      clearTimeout(timer);
      if (pid !== undefined) running.delete(pid);
      reject(new CommandError(`${shown}: ${err.message}`, stdout, stderr, null));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (pid !== undefined) running.delete(pid);
      if (timedOut) {
        reject(new CommandError(`${shown}: timed out after ${options.timeoutMs} ms\n${tail(stderr)}`, stdout, stderr, code));
      } else if (code !== 0) {
        reject(new CommandError(`${shown}: exit ${code}\n${tail(stderr || stdout)}`, stdout, stderr, code));
      } else {
        resolve({ stdout, stderr });
      }
    });
    child.stdin.on("error", () => undefined); // the command may exit without reading stdin
    child.stdin.end(options.input ?? "");
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
