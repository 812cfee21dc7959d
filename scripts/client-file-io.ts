/** File helpers the client-file scripts share (daemon.json, registries.yaml and their ledgers). */
import * as fs from "fs";
import * as path from "path";
import { writeFileAtomically } from "../material/atomic-file";

export function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`cannot read ${file}: ${(error as Error).message}`);
  }
}

/** Temp file in the same folder, then rename: readers (dockerd on SIGHUP) never see half a file. */
export function writeAtomically(file: string, content: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  const previous = statIfExists(file);
  // Keep the file's mode (and, as root, its owner) as the engine's admin set them.
  const owner = previous && process.getuid?.() === 0 ? { uid: previous.uid, gid: previous.gid } : undefined;
  writeFileAtomically(file, content, previous ? previous.mode & 0o7777 : 0o644, owner);
}

function statIfExists(file: string): fs.Stats | undefined {
  try {
    return fs.statSync(file);
  } catch {
    return undefined;
  }
}
