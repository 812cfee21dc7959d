import { accessOf, deletePermission, describeAccess, inScope, Me, parseMe } from "../../ui/src/access";

const ADMIN: Me = { user: "ana", role: "admin", repositories: ["team-a/*"], deleteEnabled: true, anonymousPull: false };

describe("web UI access rules", () => {
  test("parses the proxy's /registry-stack/me answer and refuses anything else", () => {
    expect(parseMe({ ...ADMIN })).toEqual(ADMIN);
    expect(parseMe({ ...ADMIN, repositories: null })).toEqual({ ...ADMIN, repositories: null });
    expect(parseMe({ ...ADMIN, role: "root" })).toBeUndefined();
    expect(parseMe({ ...ADMIN, repositories: "team-a/*" })).toBeUndefined();
    expect(parseMe({ user: "ana" })).toBeUndefined();
    expect(parseMe(null)).toBeUndefined();
  });

  test("without roles (404 from the proxy) every signed-in user may push and pull, delete as the registry allows", () => {
    const on = accessOf("alice", undefined, { deleteEnabled: true, requestHeader: "X-Registry-UI" });
    expect(on.rolesConfigured).toBe(false);
    expect(deletePermission(on, "any/repo")).toEqual({ allowed: true });
    expect(describeAccess(on)).toBe("roles not configured: every signed-in user may push and pull · delete allowed");
    const off = accessOf("alice", undefined, { deleteEnabled: false, requestHeader: "X-Registry-UI" });
    expect(deletePermission(off, "any/repo")).toEqual({ allowed: false, reason: expect.stringContaining("deleteEnabled: false") });
  });

  test("with roles, deleting needs the admin role, delete enabled and the repository in scope", () => {
    const admin = accessOf("ana", ADMIN, { deleteEnabled: false, requestHeader: "X-Registry-UI" });
    expect(deletePermission(admin, "team-a/app")).toEqual({ allowed: true });
    expect(deletePermission(admin, "team-b/app")).toEqual({ allowed: false, reason: expect.stringContaining("outside the repositories") });
    const pusher = accessOf("pat", { ...ADMIN, user: "pat", role: "push" }, { deleteEnabled: true, requestHeader: "X-Registry-UI" });
    expect(deletePermission(pusher, "team-a/app")).toEqual({ allowed: false, reason: expect.stringContaining("admin role; you are signed in with the push role") });
    const disabled = accessOf("ana", { ...ADMIN, deleteEnabled: false }, { deleteEnabled: true, requestHeader: "X-Registry-UI" });
    expect(deletePermission(disabled, "team-a/app").allowed).toBe(false);
    expect(describeAccess(pusher)).toBe("role push · repositories team-a/* · delete: admins only · anonymous pull off");
  });

  test("matches repository patterns with * anywhere and everything else literally", () => {
    expect(inScope("team-a/app", ["team-a/*"])).toBe(true);
    expect(inScope("team-a/x/y", ["team-a/*"])).toBe(true);
    expect(inScope("team-ab/app", ["team-a/*"])).toBe(false);
    expect(inScope("base", ["base"])).toBe(true);
    expect(inScope("base2", ["base"])).toBe(false);
    expect(inScope("a.b", ["a?b", "a+b"])).toBe(false);
    expect(inScope("anything", null)).toBe(true);
    expect(inScope("anything", [])).toBe(false);
  });
});
