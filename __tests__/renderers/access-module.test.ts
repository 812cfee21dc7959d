import { AccessRules, renderAccessModule } from "../../renderers/access-module";

/** The exports of the generated njs module, run in Node (it uses only what njs 0.7 and Node share). */
interface AccessModule {
  decide(method: string, requestUri: string, authorization?: string): string;
  filterCatalogBody(body: string, authorization?: string): string;
  describe(authorization?: string): object | undefined;
  metricsDecision(authorization?: string): string;
  loginUser(r: { headersIn: Record<string, string | undefined> }): string;
  tokenFor(authorization?: string): string;
}

function load(rules: AccessRules): AccessModule {
  const source = renderAccessModule(rules);
  const body = source.replace(/^export default /m, "return ");
  expect(body).not.toBe(source);
  return new Function("Buffer", body)(Buffer) as AccessModule;
}

const RULES: AccessRules = {
  users: [
    { name: "reader", role: "pull", repositories: ["team-a/*"] },
    { name: "builder", role: "push", repositories: ["team-a/*", "base/debian"] },
    { name: "ops", role: "admin", repositories: ["team-a/*"] },
    { name: "root", role: "admin" },
    { name: "ci", role: "push" },
  ],
  deleteEnabled: true,
  anonymousPull: false,
  tokenSeconds: 60,
};
const DIGEST = `sha256:${"a".repeat(64)}`;
const basic = (user: string, password = "pw") => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

/** One request per action, as docker and skopeo send them. */
function requests(repository: string): Record<string, [string, string]> {
  return {
    pull: ["GET", `/v2/${repository}/manifests/v1`],
    "pull (HEAD blob)": ["HEAD", `/v2/${repository}/blobs/${DIGEST}`],
    tags: ["GET", `/v2/${repository}/tags/list`],
    "start upload": ["POST", `/v2/${repository}/blobs/uploads/`],
    "upload chunk": ["PATCH", `/v2/${repository}/blobs/uploads/0190e3b1-uuid?_state=abc`],
    "put manifest": ["PUT", `/v2/${repository}/manifests/v1`],
    "delete manifest": ["DELETE", `/v2/${repository}/manifests/${DIGEST}`],
    "delete blob": ["DELETE", `/v2/${repository}/blobs/${DIGEST}`],
  };
}

describe("renderAccessModule", () => {
  const access = load(RULES);

  test("starts with the rules as a JSON literal: null repositories means all", () => {
    const source = renderAccessModule(RULES);
    const literal = /^var RULES = ([\s\S]*?);\n/m.exec(source)![1];
    expect(JSON.parse(literal)).toEqual({
      users: {
        reader: { role: "pull", repositories: ["team-a/*"] },
        builder: { role: "push", repositories: ["team-a/*", "base/debian"] },
        ops: { role: "admin", repositories: ["team-a/*"] },
        root: { role: "admin", repositories: null },
        ci: { role: "push", repositories: null },
      },
      deleteEnabled: true,
      anonymousPull: false,
      tokenSeconds: 60,
    });
  });

  test.each([
    // user, repository, expected decisions by action (pull, HEAD, tags, start, chunk, put, delete manifest, delete blob)
    ["reader", "team-a/app", "allow allow allow deny deny deny deny deny"],
    ["reader", "team-b/app", "deny deny deny deny deny deny deny deny"],
    ["builder", "team-a/app", "allow allow allow allow allow allow deny deny"],
    ["builder", "team-a/deep/er", "allow allow allow allow allow allow deny deny"],
    ["builder", "base/debian", "allow allow allow allow allow allow deny deny"],
    ["builder", "base/debian-slim", "deny deny deny deny deny deny deny deny"],
    ["builder", "team-ab/app", "deny deny deny deny deny deny deny deny"],
    ["ops", "team-a/app", "allow allow allow allow allow allow allow allow"],
    ["ops", "team-b/app", "deny deny deny deny deny deny deny deny"],
    ["root", "anything/at/all", "allow allow allow allow allow allow allow allow"],
    ["ci", "team-b/app", "allow allow allow allow allow allow deny deny"],
    ["mallory", "team-a/app", "deny deny deny deny deny deny deny deny"],
  ])("%s on %s", (user, repository, expected) => {
    const decisions = Object.values(requests(repository)).map(([method, uri]) => access.decide(method, uri, basic(user)));
    expect(decisions.join(" ")).toBe(expected);
  });

  test("a cross-repository mount needs pull on the source as well as push on the target", () => {
    const mount = (from: string) => `/v2/team-a/app/blobs/uploads/?mount=${DIGEST}&from=${from}`;
    expect(access.decide("POST", mount("team-a/base"), basic("builder"))).toBe("allow");
    expect(access.decide("POST", mount("team-b/secret"), basic("builder"))).toBe("deny");
    expect(access.decide("POST", mount("team-b%2Fsecret"), basic("builder"))).toBe("deny");
    expect(access.decide("POST", `${mount("team-a/base")}&from=team-b/secret`, basic("builder"))).toBe("deny");
    expect(access.decide("POST", `/v2/team-a/app/blobs/uploads/?mount=${DIGEST}&fr%6Fm=team-b/secret`, basic("builder"))).toBe("deny");
    expect(access.decide("POST", mount("team-b/secret"), basic("ci"))).toBe("allow");
  });

  test("decodes the path once, as the registry does: an escaped digest (the web UI's) is the digest", () => {
    expect(access.decide("GET", `/v2/team-a/app/manifests/${encodeURIComponent(DIGEST)}`, basic("reader"))).toBe("allow");
    expect(access.decide("GET", `/v2/team-b/app/manifests/${encodeURIComponent(DIGEST)}`, basic("reader"))).toBe("deny");
    expect(access.decide("GET", "/v2/team-a%2Fapp/manifests/v1", basic("reader"))).toBe("allow");
    expect(access.decide("GET", "/v2/team-a/app/manifests/sha256%253Aabc", basic("root"))).toBe("deny");
    expect(access.decide("GET", "/v2/team-a/app/manifests/%E0%A4%A", basic("root"))).toBe("deny");
  });

  test("refuses request targets the registry could read differently", () => {
    for (const uri of [
      "/v2/team-a/../team-b/app/manifests/v1",
      "/v2/team-a/%2e%2e/team-b/app/manifests/v1",
      "/v2/team-a//app/manifests/v1",
      "/v2/team-a/./app/manifests/v1",
      "/v2/Team-A/app/manifests/v1",
      "/v2/team-a/app/manifests/",
      "/v2/team-a/app/unknown/v1",
      "/v2//_catalog",
    ]) {
      expect([uri, access.decide("GET", uri, basic("root"))]).toEqual([uri, "deny"]);
    }
  });

  test("lets every user ping /v2/ and filters the catalog for users with repositories", () => {
    expect(access.decide("GET", "/v2/", basic("reader"))).toBe("allow");
    expect(access.decide("GET", "/v2/_catalog", basic("root"))).toBe("allow");
    expect(access.decide("GET", "/v2/_catalog?n=10&last=a", basic("builder"))).toBe("filter");
    const page = JSON.stringify({ repositories: ["base/debian", "base/debian-slim", "team-a/app", "team-b/app"] });
    expect(JSON.parse(access.filterCatalogBody(page, basic("builder")))).toEqual({ repositories: ["base/debian", "team-a/app"] });
    expect(JSON.parse(access.filterCatalogBody(page, basic("mallory")))).toEqual({ repositories: [] });
  });

  test("without anonymous pull, requests without credentials are never allowed", () => {
    expect(access.decide("GET", "/v2/team-a/app/manifests/v1")).toBe("login");
    expect(access.decide("GET", "/v2/team-a/app/manifests/v1", "Bearer anonymous")).toBe("login");
  });

  test("with anonymous pull, anyone may pull and must log in for everything else", () => {
    const open = load({ ...RULES, anonymousPull: true });
    expect(open.decide("GET", "/v2/")).toBe("login");
    expect(open.decide("GET", "/v2/", "Bearer anonymous")).toBe("allow");
    expect(open.decide("GET", "/v2/team-b/app/manifests/v1", "Bearer anonymous")).toBe("allow");
    expect(open.decide("HEAD", `/v2/x/blobs/${DIGEST}`)).toBe("allow");
    expect(open.decide("POST", "/v2/team-b/app/blobs/uploads/", "Bearer anonymous")).toBe("login");
    expect(open.decide("GET", "/v2/_catalog", "Bearer anonymous")).toBe("login");
    // A token of the realm is the user's credentials: the same rights as with Basic.
    const bearer = `Bearer ${open.tokenFor(basic("builder"))}`;
    expect(open.decide("POST", "/v2/team-a/app/blobs/uploads/", bearer)).toBe("allow");
    expect(open.decide("POST", "/v2/team-b/app/blobs/uploads/", bearer)).toBe("deny");
    expect(open.tokenFor(undefined)).toBe("anonymous");
  });

  test("describes a verified user for /registry-stack/me", () => {
    expect(access.describe(basic("builder", "pw:with:colons"))).toEqual({
      user: "builder",
      role: "push",
      repositories: ["team-a/*", "base/debian"],
      deleteEnabled: true,
      anonymousPull: false,
    });
    expect(access.describe(basic("root"))).toMatchObject({ role: "admin", repositories: null });
    expect(access.describe(basic("mallory"))).toBeUndefined();
  });

  test("lets only users with the admin role read /metrics (issue 20)", () => {
    // GIVEN a reader, a pusher, a scoped admin and an unscoped admin
    // WHEN / THEN
    expect(access.metricsDecision(basic("root"))).toBe("allow");
    expect(access.metricsDecision(basic("ops"))).toBe("allow");
    expect(access.metricsDecision(basic("builder"))).toBe("deny");
    expect(access.metricsDecision(basic("reader"))).toBe("deny");
    expect(access.metricsDecision(basic("mallory"))).toBe("deny");
    expect(access.metricsDecision(basic("constructor"))).toBe("deny");
    expect(access.metricsDecision(undefined)).toBe("deny");
    expect(access.metricsDecision("Bearer anonymous")).toBe("deny");
    // A token of the anonymous-pull realm is the admin's Basic credentials: the same answer.
    expect(access.metricsDecision(`Bearer ${access.tokenFor(basic("root"))}`)).toBe("allow");
  });

  test("keys the login limit per configured user name; made-up names share one key (issue 20)", () => {
    const request = (authorization?: string) => ({ headersIn: { Authorization: authorization } });
    expect(access.loginUser(request(basic("builder", "wrong")))).toBe("builder");
    expect(access.loginUser(request(`Bearer ${access.tokenFor(basic("ops"))}`))).toBe("ops");
    expect(access.loginUser(request(basic("mallory")))).toBe("-");
    expect(access.loginUser(request(basic("constructor")))).toBe("-");
    expect(access.loginUser(request(undefined))).toBe("-");
  });
});
