/** Every problem found in the configuration, reported at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[], source = "configuration") {
    super(`Invalid ${source}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}
