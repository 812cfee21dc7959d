import * as fs from "fs";
import * as path from "path";

/** The size-bound job of a mirror's data volume (POSIX sh; busybox in the official registry image). */
export const MIRROR_SIZE_BOUND_SCRIPT = fs.readFileSync(path.join(__dirname, "mirror-size-bound.sh"), "utf8");

/** How often a bounded mirror's volume is measured. */
export const MIRROR_SIZE_CHECK_SECONDS = 30;

export interface MirrorSizeBoundInput {
  /** The mirror's storage root inside the job's container. */
  readonly dataDirectory: string;
  /** The bound, MiB. */
  readonly maxSizeMb: number;
  readonly intervalSeconds: number;
}

/** `NAME=value` environment entries the script reads. */
export function mirrorSizeBoundEnvironment(input: MirrorSizeBoundInput): string[] {
  return [`DATA_DIR=${input.dataDirectory}`, `MAX_BYTES=${input.maxSizeMb * 1024 * 1024}`, `INTERVAL_SECONDS=${input.intervalSeconds}`];
}
