/** At most this many problems are spelled out; a 400k-entry list must not print 400k lines. */
export const MAX_LISTED_PROBLEMS = 50;

/**
 * The one error type for bad input: configuration, secrets, TLS files and generated material.
 * Every problem found is reported at once; each names the field or file, the value (never a
 * secret) and what to do. `main.ts` prints `message` and exits 1, without a stack trace.
 */
export class ConfigError extends Error {
  constructor(
    readonly problems: string[],
    readonly source = "configuration",
  ) {
    super(formatProblems(problems, source));
    this.name = "ConfigError";
  }
}

function formatProblems(problems: string[], source: string): string {
  const listed = problems.slice(0, MAX_LISTED_PROBLEMS).map((p) => `  - ${p}`);
  if (problems.length > MAX_LISTED_PROBLEMS) listed.push(`  … and ${problems.length - MAX_LISTED_PROBLEMS} more problems`);
  return `Invalid ${source}:\n${listed.join("\n")}`;
}
