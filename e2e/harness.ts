import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/**
 * Bookkeeping of the e2e suite: named checks with evidence and timings, assertions, progress
 * output and the one temp directory the suite creates (and alone deletes).
 */

const started = Date.now();

function stamp(): string {
  return `${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s`;
}

/** A progress line, prefixed with the time since start and a tag (scenario). */
export function say(tag: string, line: string): void {
  for (const l of line.split("\n")) console.log(`${stamp()} [${tag}] ${l}`);
}

export function elapsedSeconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertEqual<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new AssertionError(`${what}: expected ${e}, got ${a}`);
}

export function assertMatch(text: string, pattern: RegExp, what: string): void {
  if (!pattern.test(text)) throw new AssertionError(`${what}: ${JSON.stringify(clip(text, 600))} does not match ${pattern}`);
}

export function clip(text: string, max = 300): string {
  const t = text.trim();
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

/**
 * One named check of issue #3. It may run in several phases (e.g. before and after a
 * redeploy); it passes when every phase ran without error and finish() was called.
 */
export class Check {
  readonly evidence: string[] = [];
  readonly errors: string[] = [];
  private ms = 0;
  private finished = false;

  constructor(
    readonly id: string,
    readonly title: string,
    /** The deployment (scenario) the check runs against. */
    readonly deployment: string,
  ) {}

  /** Records a line of evidence (what was observed). */
  note(line: string): void {
    this.evidence.push(line);
    say(this.deployment, `  ${this.id}: ${line}`);
  }

  /**
   * Runs one phase; a thrown error fails the check (recorded, not rethrown) and later phases
   * are skipped. Returns whether the phase passed.
   */
  async phase(label: string, fn: () => Promise<void>): Promise<boolean> {
    if (this.errors.length > 0) {
      say(this.deployment, `${this.id}: skipping "${label}" (an earlier phase failed)`);
      return false;
    }
    const t0 = Date.now();
    say(this.deployment, `${this.id}: ${label}…`);
    try {
      await fn();
      return true;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.errors.push(`${label}: ${message}`);
      say(this.deployment, `${this.id}: FAILED in "${label}": ${clip(message, 2000)}`);
      return false;
    } finally {
      this.ms += Date.now() - t0;
    }
  }

  /** Fails the check without running it (e.g. the deployment it needs did not come up). */
  abort(reason: string): void {
    if (!this.finished) this.errors.push(reason);
    this.finished = true;
  }

  finish(): void {
    this.finished = true;
  }

  get ok(): boolean {
    return this.finished && this.errors.length === 0;
  }

  get seconds(): number {
    return this.ms / 1000;
  }

  report(): string {
    const status = this.ok ? "PASS" : "FAIL";
    const lines = [`${status}  ${this.id}  ${this.title}  (${this.seconds.toFixed(1)} s)`];
    for (const e of this.evidence) lines.push(`        ${e}`);
    if (!this.finished && this.errors.length === 0) lines.push("        ERROR: did not complete");
    for (const e of this.errors) lines.push(`        ERROR: ${e.replace(/\n/g, "\n               ")}`);
    return lines.join("\n");
  }
}

/**
 * The suite's temp directory (mkdtemp). Only this directory is ever deleted by the suite;
 * an exit handler removes it too if the process ends early.
 */
export class Workspace {
  readonly root: string;
  private removed = false;
  private readonly onExit = () => this.remove();

  constructor(prefix = "rse2e-run-") {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    process.once("exit", this.onExit);
  }

  /** A fresh subdirectory (mkdtemp inside the root). */
  dir(name: string): string {
    return fs.mkdtempSync(path.join(this.root, `${name}-`));
  }

  remove(): void {
    if (this.removed) return;
    this.removed = true;
    process.removeListener("exit", this.onExit);
    fs.rmSync(this.root, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** Measures named stages for the closing timing table. */
export class Timings {
  private readonly rows: { label: string; seconds: number }[] = [];

  async time<T>(label: string, fn: () => Promise<T>): Promise<T> {
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      this.rows.push({ label, seconds: (Date.now() - t0) / 1000 });
    }
  }

  lines(): string[] {
    return this.rows.map((r) => `${r.label}: ${r.seconds.toFixed(1)} s`);
  }
}
