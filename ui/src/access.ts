// What the signed-in user may do, from the proxy's /registry-stack/me (roles, issue #11) or,
// when the proxy has no roles, from the stack's settings. Pure: no DOM, no network.

export type Role = "pull" | "push" | "admin";

/** The proxy's answer to `GET /registry-stack/me`. */
export interface Me {
  readonly user: string;
  readonly role: Role;
  /** Repository patterns the user is limited to (`team-a/*`); null = every repository. */
  readonly repositories: readonly string[] | null;
  readonly deleteEnabled: boolean;
  readonly anonymousPull: boolean;
}

/** What the stack wrote into /ui/settings.json. */
export interface UiSettings {
  readonly deleteEnabled: boolean;
  /** The header the proxy recognizes the page's requests by (no Basic challenge on their 401s). */
  readonly requestHeader: string;
}

export interface Access {
  readonly user: string;
  /** Whether the proxy enforces roles; false = every signed-in user may push and pull. */
  readonly rolesConfigured: boolean;
  readonly role: Role | undefined;
  readonly repositories: readonly string[] | null;
  readonly deleteEnabled: boolean;
  readonly anonymousPull: boolean | undefined;
}

export function parseMe(body: unknown): Me | undefined {
  if (body === null || typeof body !== "object") return undefined;
  const m = body as Record<string, unknown>;
  const roles: readonly unknown[] = ["pull", "push", "admin"];
  const repos = m.repositories;
  if (typeof m.user !== "string" || !roles.includes(m.role) || typeof m.deleteEnabled !== "boolean" || typeof m.anonymousPull !== "boolean") return undefined;
  if (repos !== null && !(Array.isArray(repos) && repos.every((r) => typeof r === "string"))) return undefined;
  return { user: m.user, role: m.role as Role, repositories: repos as string[] | null, deleteEnabled: m.deleteEnabled, anonymousPull: m.anonymousPull };
}

/** From the proxy's answer, or (`me` undefined: the endpoint answered 404) from the stack's settings. */
export function accessOf(user: string, me: Me | undefined, settings: UiSettings): Access {
  if (me === undefined) {
    return { user, rolesConfigured: false, role: undefined, repositories: null, deleteEnabled: settings.deleteEnabled, anonymousPull: undefined };
  }
  return { user: me.user, rolesConfigured: true, role: me.role, repositories: me.repositories, deleteEnabled: me.deleteEnabled, anonymousPull: me.anonymousPull };
}

/** `team-a/*` matches `team-a/app` and `team-a/x/y`; a pattern without `*` matches itself only. */
export function inScope(repository: string, patterns: readonly string[] | null): boolean {
  if (patterns === null) return true;
  return patterns.some((p) => new RegExp(`^${p.split("*").map(escapeRegExp).join(".*")}$`).test(repository));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Whether the user may delete tags in `repository`, and if not, why (shown instead of a button). */
export function deletePermission(access: Access, repository: string): { allowed: true } | { allowed: false; reason: string } {
  if (!access.deleteEnabled) return { allowed: false, reason: "Deleting is off on this registry (deleteEnabled: false in the stack's configuration)." };
  if (!access.rolesConfigured) return { allowed: true };
  if (access.role !== "admin") return { allowed: false, reason: `Deleting needs the admin role; you are signed in with the ${access.role} role.` };
  if (!inScope(repository, access.repositories)) return { allowed: false, reason: "This repository is outside the repositories your account may manage." };
  return { allowed: true };
}

/** One line for the header: "admin · repositories team-a/*, base/* · delete allowed". */
export function describeAccess(access: Access): string {
  const parts: string[] = [];
  if (access.rolesConfigured) {
    parts.push(`role ${access.role}`);
    parts.push(access.repositories === null ? "all repositories" : `repositories ${access.repositories.join(", ") || "(none)"}`);
  } else {
    parts.push("roles not configured: every signed-in user may push and pull");
  }
  parts.push(access.deleteEnabled ? (access.rolesConfigured && access.role !== "admin" ? "delete: admins only" : "delete allowed") : "delete off");
  if (access.anonymousPull !== undefined) parts.push(access.anonymousPull ? "anonymous pull on" : "anonymous pull off");
  return parts.join(" · ");
}
