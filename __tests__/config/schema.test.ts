import { problemsOf as problemsOfRun } from "../fixtures/problems-of";
import { resolveSettings } from "../../config/schema";

function problemsOf(props: object): string[] {
  return problemsOfRun(() => resolveSettings(props, "registry"));
}

describe("resolveSettings", () => {
  test("applies the documented defaults", () => {
    const settings = resolveSettings({}, "registry");
    expect(settings).toMatchObject({
      namePrefix: "registry",
      dockerHost: "unix:///var/run/docker.sock",
      registryImage: "registry:3.1.1",
      proxyImage: "nginx:1.28.2-alpine",
      hostnames: ["localhost"],
      ipAddresses: ["127.0.0.1"],
      publicPort: 5000,
      proxy: true,
      tls: { mode: "self-signed" },
      users: [{ name: "admin" }],
      bcryptCost: 10,
      deleteEnabled: false,
      volumeName: "registry-data",
      preventVolumeDestroy: true,
      clientConfigDirectory: "client-config",
      materialDirectory: "assets/generated/registry",
    });
  });

  test("turns the auth cache on with the proxy and off without it", () => {
    expect(resolveSettings({}, "registry").authCacheSeconds).toBe(60);
    expect(resolveSettings({ proxy: false }, "registry").authCacheSeconds).toBe(0);
    expect(resolveSettings({ authCacheSeconds: 0 }, "registry").authCacheSeconds).toBe(0);
  });

  test("keeps explicit values, including only IP addresses", () => {
    const settings = resolveSettings({ ipAddresses: ["192.0.2.10"], publicPort: 443, namePrefix: "store", bcryptCost: 12 }, "s");
    expect(settings.hostnames).toEqual([]);
    expect(settings.ipAddresses).toEqual(["192.0.2.10"]);
    expect(settings.volumeName).toBe("store-data");
    expect(settings.bcryptCost).toBe(12);
  });

  test("fails when several fields are wrong, reporting every one with field, value and remedy", () => {
    const problems = problemsOf({
      hostnames: ["store_01"],
      publicPort: 70000,
      registryImage: "registry",
      proxyImage: "nginx:latest",
      users: [{ name: "a b" }, { name: "bob:x" }],
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'hostnames[0]: "store_01" is not a valid DNS name; use letters, digits and hyphens in dot-separated labels',
        "publicPort: 70000 must be a port number from 1 to 65535",
        expect.stringMatching(/^registryImage: "registry" must be pinned/),
        expect.stringMatching(/^proxyImage: "nginx:latest" must be pinned/),
        expect.stringMatching(/^users\[0\]\.name: "a b" must not be empty and must not contain ':' or whitespace/),
        expect.stringMatching(/^users\[1\]\.name: "bob:x"/),
      ]),
    );
    expect(problems).toHaveLength(6);
  });

  test("fails when a user is listed twice", () => {
    expect(problemsOf({ users: [{ name: "alice" }, { name: "alice" }] })).toEqual([
      'users[1].name: "alice" is listed twice; each user needs a unique name',
    ]);
  });

  test("fails when a password is empty, without echoing it", () => {
    expect(problemsOf({ users: [{ name: "alice", password: "" }] })).toEqual([
      "users[0].password: is empty; supply a password or leave it out to have one generated",
    ]);
  });

  test("fails when a password is over 72 bytes (bcrypt would truncate it), without echoing it", () => {
    const password = "é".repeat(37); // 74 bytes in UTF-8, 37 characters
    const problems = problemsOf({ users: [{ name: "alice", password }] });
    expect(problems).toEqual([expect.stringMatching(/^users\[0\]\.password: is longer than 72 bytes/)]);
    expect(problems[0]).not.toContain("é");
  });

  test("fails when the user list is empty", () => {
    expect(problemsOf({ users: [] })).toEqual([expect.stringMatching(/^users: is empty/)]);
  });

  test("fails when a tcp:// engine has no TLS client certificates", () => {
    expect(problemsOf({ dockerHost: "tcp://build.example.test:2376" })).toEqual([expect.stringMatching(/^dockerCertPath: is required with a tcp:\/\/ dockerHost/)]);
  });

  test("fails when the docker host has an unknown scheme", () => {
    expect(problemsOf({ dockerHost: "http://x" })).toEqual(['dockerHost: "http://x" must start with unix:///, ssh:// or tcp://']);
  });

  test("fails when the HTTP redirect is asked for without TLS", () => {
    expect(problemsOf({ httpRedirectPort: 80, tls: { mode: "none" } })).toEqual([expect.stringMatching(/^httpRedirectPort: 80 needs proxy: true and TLS/)]);
  });

  test("fails when both a host folder and a volume name are given, or the folder is relative", () => {
    expect(problemsOf({ storageHostPath: "/srv/registry", volumeName: "data" })).toEqual([expect.stringMatching(/^storageHostPath: "\/srv\/registry" and volumeName are both set/)]);
    expect(problemsOf({ storageHostPath: "srv/registry" })).toEqual(['storageHostPath: "srv/registry" must be an absolute path']);
  });

  test("fails when the TLS mode is unknown or files are missing from files mode", () => {
    expect(problemsOf({ tls: { mode: "letsencrypt" } })).toEqual(["tls.mode: must be one of 'self-signed', 'files', 'none'"]);
    expect(problemsOf({ tls: { mode: "files", certificateFile: "a.crt" } })).toEqual(["tls.keyFile: is required", "tls.caFile: is required"]);
  });

  test("fails when a key is misspelled", () => {
    expect(problemsOf({ hostname: ["x"] })).toEqual([expect.stringMatching(/^\(root\): unknown key\(s\) "hostname"/)]);
  });

  test("fails when the debug port is the registry port", () => {
    expect(problemsOf({ debugPort: 5000 })).toEqual(["debugPort: 5000 is the registry's own port; pick another"]);
  });
});
