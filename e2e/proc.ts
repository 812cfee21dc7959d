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

/** Runs a command without a shell; rejects with its stderr on non-zero exit or timeout. */
export function run(command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ["pipe", "pipe", "pipe"],
    });
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
      child.kill("SIGKILL");
    }, options.timeoutMs);
    const shown = [command, ...args].join(" ");
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new CommandError(`${shown}: ${err.message}`, stdout, stderr, null));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
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
