import { USER_NAME } from "../config/rules";

export interface HtpasswdEntry {
  readonly name: string;
  /** A bcrypt hash, e.g. from bcryptjs. */
  readonly hash: string;
}

// distribution's htpasswd auth accepts bcrypt only; other hashes never match.
const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;

/** One `name:hash` line per entry, in the given order. Throws listing every invalid entry. */
export function renderHtpasswd(entries: ReadonlyArray<HtpasswdEntry>): string {
  const problems: string[] = [];
  const seen = new Set<string>();
  entries.forEach(({ name, hash }, i) => {
    if (!USER_NAME.test(name)) {
      problems.push(`entries[${i}].name: ${JSON.stringify(name)} must be non-empty without ":" or whitespace, not starting with "#"`);
    } else if (seen.has(name)) {
      problems.push(`entries[${i}].name: ${JSON.stringify(name)} appears more than once; keep one entry per user`);
    }
    seen.add(name);
    if (!BCRYPT.test(hash)) {
      problems.push(
        `entries[${i}].hash for ${JSON.stringify(name)} is not a bcrypt hash ($2a$, $2b$ or $2y$); the registry accepts bcrypt only`,
      );
    }
  });
  if (problems.length > 0) {
    throw new Error(`invalid htpasswd entries:\n${problems.join("\n")}`);
  }
  return entries.map(({ name, hash }) => `${name}:${hash}\n`).join("");
}
