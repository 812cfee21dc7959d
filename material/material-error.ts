/**
 * Problems with generated or operator-supplied material (certificates, keys, passwords).
 * All problems are collected and reported at once; each names the field, the value and
 * what to do.
 */
export class MaterialError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid TLS or credential material:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "MaterialError";
  }
}
