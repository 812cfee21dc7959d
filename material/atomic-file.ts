import * as fs from "fs";
import * as path from "path";

let tempCounter = 0;

/**
 * Replaces `file` with `content` atomically: a temp file beside it, written with `mode` (set
 * explicitly, so the umask does not matter) and fsynced, then renamed over the target. A reader
 * sees the old or the new content, never a half-written file; on failure the temp file goes.
 */
export function writeFileAtomically(file: string, content: string, mode: number, owner?: { readonly uid: number; readonly gid: number }): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${++tempCounter}.tmp`);
  try {
    const fd = fs.openSync(temp, "wx", mode);
    try {
      fs.fchmodSync(fd, mode);
      if (owner) fs.fchownSync(fd, owner.uid, owner.gid);
      fs.writeFileSync(fd, content, "utf8");
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
}
