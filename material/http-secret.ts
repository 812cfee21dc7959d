import { Entropy } from "./entropy";
import { MaterialStore } from "./material-store";

const FILE = "http-secret";

/**
 * The registry's `http.secret`. It must be identical across replicas and stable across
 * synths (a change replaces the container and invalidates in-flight uploads), so it is
 * generated once and persisted. A missing or malformed file is regenerated.
 */
export function ensureHttpSecret(store: MaterialStore, entropy: Entropy): string {
  const stored = store.read(FILE)?.trim();
  if (stored !== undefined && /^[0-9a-f]{64}$/.test(stored)) return stored;
  const secret = entropy.randomBytes(32).toString("hex");
  store.write(FILE, secret, 0o600);
  return secret;
}
