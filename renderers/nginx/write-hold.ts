import { block, registryError } from "./block";

// Writes held (503) while the maintenance container collects garbage.

export interface WriteHold {
  /** Path of the flag file inside the proxy container. */
  readonly flagFile: string;
  /** Retry-After of the 503; Docker clients retry on their own schedule, others may read it. */
  readonly retryAfterSeconds: number;
}

const WRITE_HELD_LOCATION = "/_registry_write_held";

// Checked in the rewrite phase, before auth: an unverified write gets the 503 too (it learns only
// that the registry is in maintenance), and an anonymous one still gets 401 first with the auth cache.
/** Server level: whether this request is a write to hold (the flag file exists). */
export function writeHoldFlag(hold: WriteHold): string[] {
  return ["set $registry_hold_write $registry_write_request;", ...block(`if (!-f ${hold.flagFile})`, ["set $registry_hold_write 0;"])];
}

/** Location level, after the login check: a held write goes to the 503 location. */
export function writeHoldCheck(): string[] {
  return block("if ($registry_hold_write)", [`rewrite ^ ${WRITE_HELD_LOCATION} last;`]);
}

export function writeHeldLocation(hold: WriteHold): string[] {
  return block(`location = ${WRITE_HELD_LOCATION}`, [
    "internal;",
    "default_type application/json;",
    `add_header Retry-After ${hold.retryAfterSeconds} always;`,
    "add_header Docker-Distribution-Api-Version registry/2.0 always;",
    `return 503 '${registryError("UNAVAILABLE", "the registry is collecting garbage; writes are held, reads work; retry shortly")}';`,
  ]);
}
