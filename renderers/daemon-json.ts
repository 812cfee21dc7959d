/** What this project manages in the Docker daemon's daemon.json. */
export interface DaemonJsonInput {
  /** Registries ("host:port") the daemon should reach without TLS verification. */
  readonly insecureRegistries: string[];
  /** Every registry this project may have written before; stale entries among them are removed. */
  readonly managedRegistries: string[];
}

const KEY = "insecure-registries";

/**
 * Merges `input` into an existing daemon.json text (undefined when there is no file), keeping
 * every other key and the key order.
 */
export function renderDaemonJson(
  existing: string | undefined,
  input: DaemonJsonInput,
  sourceName = "daemon.json",
): string {
  const config = parseExisting(existing, sourceName);
  const hadKey = Object.prototype.hasOwnProperty.call(config, KEY);
  const current = hadKey ? config[KEY] : [];
  if (!Array.isArray(current) || !current.every((entry) => typeof entry === "string")) {
    throw new Error(
      `${sourceName}: "${KEY}" must be an array of strings, got ${JSON.stringify(current)}; fix it by hand, then run again`,
    );
  }

  const managed = new Set(input.managedRegistries);
  const merged = [...new Set([...current.filter((entry) => !managed.has(entry)), ...input.insecureRegistries])];
  if (hadKey || merged.length > 0) {
    config[KEY] = merged;
  }
  return JSON.stringify(config, null, 2) + "\n";
}

function parseExisting(existing: string | undefined, sourceName: string): Record<string, unknown> {
  // dockerd accepts an empty (or whitespace-only) daemon.json and a UTF-8 BOM.
  const text = (existing ?? "").replace(/^\uFEFF/, "");
  if (text.trim() === "") {
    return {};
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(
      `${sourceName} is not valid JSON (${(error as Error).message}); dockerd would refuse to start with it: ` +
        "fix or remove the file, then run again",
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(
      `${sourceName} is not a JSON object (got ${Array.isArray(parsed) ? "an array" : JSON.stringify(parsed)}); ` +
        "daemon.json must be an object like {}: fix or remove the file, then run again",
    );
  }
  return parsed as Record<string, unknown>;
}
