import * as fs from "fs";
import * as path from "path";

/**
 * A directory of generated material (keys, certificates, passwords) that is reused across
 * synths. Files are only rewritten when their content changes, so hashes and mtimes stay
 * stable and the docker provider does not replace containers needlessly.
 */
export class MaterialStore {
  /** Absolute path of the store directory. */
  readonly directory: string;
  private tempCounter = 0;

  constructor(directory: string) {
    this.directory = path.resolve(directory);
  }

  /** Absolute path of a file in the store (which may not exist yet). */
  path(name: string): string {
    if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes(path.sep)) {
      throw new Error(`MaterialStore: "${name}" is not a plain file name`);
    }
    return path.join(this.directory, name);
  }

  /** The file's content, or undefined when it does not exist. */
  read(name: string): string | undefined {
    try {
      return fs.readFileSync(this.path(name), "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  }

  /**
   * Writes `content` atomically (temp file + rename) unless the file already holds it, and
   * sets `mode` explicitly so the umask does not matter. Returns the absolute path.
   */
  write(name: string, content: string, mode = 0o600): string {
    const target = this.path(name);
    if (this.read(name) === content) {
      fs.chmodSync(target, mode);
      return target;
    }
    this.ensureDirectory();
    const temp = path.join(this.directory, `.${name}.${process.pid}.${++this.tempCounter}.tmp`);
    try {
      const fd = fs.openSync(temp, "wx", mode);
      try {
        fs.fchmodSync(fd, mode);
        fs.writeFileSync(fd, content, "utf8");
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(temp, target);
    } catch (error) {
      fs.rmSync(temp, { force: true });
      throw error;
    }
    return target;
  }

  /** Deletes the file if it exists (e.g. secrets nobody uses any more). */
  remove(name: string): void {
    fs.rmSync(this.path(name), { force: true });
  }

  private ensureDirectory(): void {
    if (fs.existsSync(this.directory)) return;
    fs.mkdirSync(this.directory, { recursive: true });
    fs.chmodSync(this.directory, 0o700);
  }
}
