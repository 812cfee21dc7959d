import * as fs from "fs";
import * as path from "path";
import { ConfigError } from "../config/config-error";
import { writeFileAtomically } from "./atomic-file";

export interface MaterialStoreOptions {
  /**
   * Keep writes in memory until `commit()`, so that a synth that fails on bad input leaves
   * every file as it was. Reads see the staged content.
   * @default false - write at once
   */
  readonly deferWrites?: boolean;
}

/**
 * A directory of generated material (keys, certificates, passwords) that is reused across
 * synths. Files are only rewritten when their content changes, so hashes and mtimes stay
 * stable and the docker provider does not replace containers needlessly. Nothing is ever
 * deleted: a lost CA key or generated password cannot be brought back.
 */
export class MaterialStore {
  /** Absolute path of the store directory. */
  readonly directory: string;
  private readonly staged = new Map<string, { readonly content: string; readonly mode: number }>();
  private deferring: boolean;

  constructor(directory: string, options: MaterialStoreOptions = {}) {
    this.directory = path.resolve(directory);
    this.deferring = options.deferWrites ?? false;
  }

  /** Absolute path of a file in the store (which may not exist yet). */
  path(name: string): string {
    if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes(path.sep)) {
      throw new Error(`MaterialStore: "${name}" is not a plain file name`);
    }
    return path.join(this.directory, name);
  }

  /** The file's content (staged, else on disk), or undefined when it does not exist. */
  read(name: string): string | undefined {
    const staged = this.staged.get(name);
    if (staged !== undefined) return staged.content;
    const file = this.path(name);
    try {
      return fs.readFileSync(file, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return undefined;
      throw new ConfigError(
        [`${file}: cannot be read (${code ?? (error as Error).message}); the material folder and its files must be readable by the user running cdktf`],
        `material in ${this.directory}`,
      );
    }
  }

  /** Names of the files a `commit()` would write, in order. */
  get pendingWrites(): string[] {
    return [...this.staged.keys()];
  }

  /**
   * Writes `content` (at once, or at `commit()` when writes are deferred) unless the file
   * already holds it, with `mode` set explicitly so the umask does not matter. Returns the
   * absolute path the file has (or will have).
   */
  write(name: string, content: string, mode = 0o600): string {
    const target = this.path(name);
    if (this.deferring) {
      this.staged.set(name, { content, mode });
      return target;
    }
    return this.writeNow(name, content, mode);
  }

  /** Writes every staged file (each atomically: temp file + rename); later writes go straight to disk. */
  commit(): void {
    for (const [name, { content, mode }] of this.staged) this.writeNow(name, content, mode);
    this.staged.clear();
    this.deferring = false;
  }

  private writeNow(name: string, content: string, mode: number): string {
    const target = this.path(name);
    if (this.readFromDisk(target) === content) {
      fs.chmodSync(target, mode);
      return target;
    }
    this.ensureDirectory();
    writeFileAtomically(target, content, mode);
    return target;
  }

  private readFromDisk(file: string): string | undefined {
    try {
      return fs.readFileSync(file, "utf8");
    } catch {
      return undefined;
    }
  }

  private ensureDirectory(): void {
    if (fs.existsSync(this.directory)) return;
    fs.mkdirSync(this.directory, { recursive: true });
    fs.chmodSync(this.directory, 0o700);
  }
}
