import { problemsOf as problemsOfRun } from "../fixtures/problems-of";
import * as path from "path";
import { ConfigError, MAX_LISTED_PROBLEMS } from "../../config/config-error";
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
      clientConfigDirectory: path.join(process.cwd(), "client-config"),
      materialDirectory: path.join(process.cwd(), "assets", "generated", "registry"),
    });
  });

  test("resolves relative folders and TLS files against projectDirectory", () => {
    const settings = resolveSettings(
      { projectDirectory: "/srv/project", materialDirectory: "m", clientConfigDirectory: "/etc/docker", tls: { mode: "files", certificateFile: "t/s.crt", keyFile: "t/s.key", caFile: "/pki/ca.crt" } },
      "registry",
    );
    expect(settings.materialDirectory).toBe("/srv/project/m");
    expect(settings.clientConfigDirectory).toBe("/etc/docker");
    expect(settings.tls).toEqual({ mode: "files", certificateFile: "/srv/project/t/s.crt", keyFile: "/srv/project/t/s.key", caFile: "/pki/ca.crt" });
  });

  test("turns the auth cache on with the proxy and off without it", () => {
    expect(resolveSettings({}, "registry").authCacheSeconds).toBe(60);
    expect(resolveSettings({ proxy: false }, "registry").authCacheSeconds).toBe(0);
    expect(resolveSettings({ authCacheSeconds: 0 }, "registry").authCacheSeconds).toBe(0);
  });

  test("serves blobs from storage wherever nginx checks logins (proxy + auth cache), unless told not to", () => {
    expect(resolveSettings({}, "registry").serveBlobsFromStorage).toBe(true);
    expect(resolveSettings({ authCacheSeconds: 0 }, "registry").serveBlobsFromStorage).toBe(false);
    expect(resolveSettings({ proxy: false }, "registry").serveBlobsFromStorage).toBe(false);
    expect(resolveSettings({ serveBlobsFromStorage: false }, "registry").serveBlobsFromStorage).toBe(false);
  });

  test("fails when blobs from storage are asked for where nginx does not check logins", () => {
    expect(problemsOf({ authCacheSeconds: 0, serveBlobsFromStorage: true })).toEqual([
      expect.stringMatching(/^serveBlobsFromStorage: needs the auth cache \(authCacheSeconds > 0\)/),
    ]);
    expect(problemsOf({ proxy: false, serveBlobsFromStorage: true })).toEqual([expect.stringMatching(/^serveBlobsFromStorage: needs proxy: true/)]);
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
        'hostnames[0]: "store_01" is not a valid DNS name; use letters, digits and hyphens in dot-separated labels (no wildcards)',
        "publicPort: 70000 must be a port number from 1 to 65535",
        expect.stringMatching(/^registryImage: "registry" must be pinned/),
        expect.stringMatching(/^proxyImage: "nginx:latest" must be pinned/),
        expect.stringMatching(/^users\[0\]\.name: "a b" must not be empty, must not start with '#'.* and must not contain ':', whitespace or control characters/),
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

  test("fails when storageHostPath is a system folder, which the volume owner would chown (issue 20)", () => {
    // GIVEN / WHEN / THEN
    for (const folder of ["/", "/etc", "/etc/registry", "/usr/local/registry", "/var", "/var/lib", "/var/lib/docker/volumes/x", "/home", "/home/", "/srv", "/root", "/boot", "/proc/1", "/sys", "/dev", "/bin", "/sbin", "/lib", "/lib64", "/opt", "/tmp", "/srv/../etc"]) {
      expect(problemsOf({ storageHostPath: folder })).toEqual([expect.stringMatching(new RegExp(`^storageHostPath: ${JSON.stringify(folder).replace(/[./]/g, "\\$&")} is a system folder`))]);
    }
    expect(problemsOf({ storageHostPath: "/" })).toEqual([
      'storageHostPath: "/" is a system folder: the registry\'s volume owner would chown everything in it to the registry\'s user; use a folder of its own, e.g. /srv/registry',
    ]);
    for (const folder of ["/srv/registry", "/home/ops/registry", "/tmp/registry-data", "/data/registry", "/opt/registry"]) {
      expect(resolveSettings({ storageHostPath: folder }, "registry").storageHostPath).toBe(folder);
    }
  });

  test("fails when a user name starts with '#' (skipped as a comment by distribution's htpasswd reader) or has a control character (issue 20)", () => {
    expect(problemsOf({ users: [{ name: "#ops" }, { name: "ok#" }, { name: "a\u0007b" }] })).toEqual([
      'users[0].name: "#ops" must not be empty, must not start with \'#\' (the registry\'s htpasswd reader skips such lines as comments) and must not contain \':\', whitespace or control characters',
      'users[2].name: "a\\u0007b" must not be empty, must not start with \'#\' (the registry\'s htpasswd reader skips such lines as comments) and must not contain \':\', whitespace or control characters',
    ]);
  });

  test("fails when a password has a line break or a control character, without showing it (issue 20)", () => {
    const problems = problemsOf({ users: [{ name: "alice", password: "Block-Pw-9\n" }, { name: "bob", password: "Esc\u001b-Pw-1" }, { name: "carol", password: "Tab\t-Pw-ok" }] });
    expect(problems).toEqual([
      "users[0].password: contains a line break; use a password of printable characters",
      "users[1].password: contains a control character (NUL, escape…); use a password of printable characters",
    ]);
  });

  test("takes the login limit's burst and scope, and refuses them where there is no limiter (issue 20)", () => {
    expect(resolveSettings({}, "registry")).toMatchObject({ failedLoginsPerMinute: 30, failedLoginsScope: "address" });
    expect(resolveSettings({}, "registry").failedLoginsBurst).toBeUndefined();
    expect(resolveSettings({ failedLoginsBurst: 5, failedLoginsScope: "address-and-user" }, "registry")).toMatchObject({ failedLoginsBurst: 5, failedLoginsScope: "address-and-user" });
    expect(problemsOf({ failedLoginsScope: "user" })).toEqual(["failedLoginsScope: \"user\" must be one of 'address', 'address-and-user'"]);
    expect(problemsOf({ failedLoginsBurst: -1 })).toEqual(["failedLoginsBurst: -1 must be 0 (no burst: the rate alone) or more"]);
    expect(problemsOf({ authCacheSeconds: 0, failedLoginsBurst: 5, failedLoginsScope: "address-and-user" })).toEqual([
      "failedLoginsBurst: 5 needs the proxy's login check (proxy: true and authCacheSeconds above 0), which has the login limit; remove it or enable the login check",
      'failedLoginsScope: "address-and-user" needs the proxy\'s login check (proxy: true and authCacheSeconds above 0), which has the login limit; remove it or enable the login check',
    ]);
  });

  test("limits logins sent to the verifier from all addresses together, by default a constant bcrypt load (issue 22)", () => {
    // 240 a minute at cost 10; each cost step doubles bcrypt's work and halves the default
    expect(resolveSettings({}, "registry").loginVerificationsPerMinute).toBe(240);
    expect(resolveSettings({ bcryptCost: 12 }, "registry").loginVerificationsPerMinute).toBe(60);
    expect(resolveSettings({ bcryptCost: 9 }, "registry").loginVerificationsPerMinute).toBe(480);
    expect(resolveSettings({ bcryptCost: 15 }, "registry").loginVerificationsPerMinute).toBe(15);
    expect(resolveSettings({ loginVerificationsPerMinute: 600 }, "registry").loginVerificationsPerMinute).toBe(600);
    expect(problemsOf({ loginVerificationsPerMinute: 0 })).toEqual(["loginVerificationsPerMinute: 0 must be at least 1"]);
    expect(problemsOf({ authCacheSeconds: 0, loginVerificationsPerMinute: 60 })).toEqual([
      "loginVerificationsPerMinute: 60 needs the proxy's login check (proxy: true and authCacheSeconds above 0), which has the login limit; remove it or enable the login check",
    ]);
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

  describe("roles (issue #11)", () => {
    test("defaults every user to push on all repositories, and the embedded default user to admin", () => {
      const settings = resolveSettings({ users: [{ name: "alice" }, { name: "ci", role: "pull", repositories: ["team-a/*", "base/debian"] }] }, "registry");
      expect(settings.users).toEqual([
        { name: "alice", role: "push" },
        { name: "ci", role: "pull", repositories: ["team-a/*", "base/debian"] },
      ]);
      expect(settings.anonymousPull).toBe(false);
      expect(resolveSettings({}, "registry").users).toEqual([{ name: "admin", role: "admin" }]);
    });

    test("fails when a role is unknown or a repository scope is not a repository name or prefix", () => {
      expect(problemsOf({ users: [{ name: "a", role: "owner", repositories: ["Team-A/*", "team-a/*/x", "*", "team-a/app"] }, { name: "b", repositories: [] }] })).toEqual([
        'users[0].role: "owner" must be one of \'pull\', \'push\', \'admin\'',
        expect.stringMatching(/^users\[0\]\.repositories\[0\]: "Team-A\/\*" must be a repository name/),
        expect.stringMatching(/^users\[0\]\.repositories\[1\]: "team-a\/\*\/x" must be a repository name/),
        expect.stringMatching(/^users\[0\]\.repositories\[2\]: "\*" must be a repository name/),
        "users[1].repositories: is empty; list the repositories the user may use, or leave it out for all",
      ]);
    });

    test("fails when restrictions are asked for where the proxy does not check logins", () => {
      const restricted = { users: [{ name: "a", role: "pull" as const }, { name: "b", repositories: ["team-b/*"] }, { name: "c", role: "admin" as const }], anonymousPull: true };
      const because = "needs the proxy's login check (proxy: true and authCacheSeconds above 0), which enforces roles";
      for (const topology of [{ proxy: false }, { authCacheSeconds: 0 }]) {
        expect(problemsOf({ ...topology, ...restricted })).toEqual([
          expect.stringMatching(new RegExp(`^users\\[0\\]\\.role: "pull" ${because.replace(/[()]/g, "\\$&")}`)),
          expect.stringMatching(/^users\[1\]\.repositories: needs the proxy's login check/),
          expect.stringMatching(/^anonymousPull: needs the proxy's login check/),
        ]);
      }
    });
  });

  describe("inputs that used to pass (issue #8, item 6)", () => {
    test("fails when an image digest has the wrong length, instead of reading it as a tag", () => {
      expect(problemsOf({ registryImage: "registry@sha256:deadbeef" })).toEqual([
        'registryImage: "registry@sha256:deadbeef" has a sha256 digest of 8 hex digits, not 64; copy the whole digest (docker images --digests)',
      ]);
    });

    test("fails when a digest is not sha256 hex, or the repository or tag is malformed", () => {
      expect(problemsOf({ registryImage: "registry@md5:abc", proxyImage: "Nginx:1.28" })).toEqual([
        'registryImage: "registry@md5:abc" has a digest that is not sha256:<64 lowercase hex digits>; copy the whole digest (docker images --digests)',
        'proxyImage: "Nginx:1.28" has an invalid repository name "Nginx"; use lowercase letters, digits and . _ - separators, optionally after a registry host',
      ]);
    });

    test("accepts tags, full digests, both, and registry hosts with ports", () => {
      const digest = `sha256:${"ab".repeat(32)}`;
      for (const image of ["registry:3.1.1", `registry@${digest}`, `registry:3.1.1@${digest}`, "mirror.example.test:5000/library/nginx:1.28.2-alpine"]) {
        expect(resolveSettings({ registryImage: image }, "registry").registryImage).toBe(image);
      }
    });

    test("fails when users' password variables collide", () => {
      expect(problemsOf({ users: [{ name: "ci-bot" }, { name: "ci_bot" }, { name: "CI.BOT" }] })).toEqual([
        'users[1].name: "ci_bot" reads its password from REGISTRY_PASSWORD_CI_BOT, as users[0] "ci-bot" does; rename one of them',
        'users[2].name: "CI.BOT" reads its password from REGISTRY_PASSWORD_CI_BOT, as users[0] "ci-bot" does; rename one of them',
      ]);
    });

    test("fails when dockerHost is ssh:// without a host, saying so rather than blaming the prefix", () => {
      expect(problemsOf({ dockerHost: "ssh://" })).toEqual(['dockerHost: "ssh://" has no host after ssh://; use ssh://user@host or ssh://user@host:port']);
      expect(problemsOf({ dockerHost: "ssh://deploy@" })).toEqual(['dockerHost: "ssh://deploy@" has no host after ssh://; use ssh://user@host or ssh://user@host:port']);
      expect(problemsOf({ dockerHost: "tcp://build.example.test", dockerCertPath: "/certs" })).toEqual([
        'dockerHost: "tcp://build.example.test" is not tcp://host:port; e.g. tcp://build.example.test:2376',
      ]);
      expect(problemsOf({ dockerHost: "unix://" })).toEqual(['dockerHost: "unix://" needs an absolute socket path after unix://, e.g. unix:///var/run/docker.sock']);
      expect(resolveSettings({ dockerHost: "ssh://deploy@store.example.test:2222" }, "registry").dockerHost).toBe("ssh://deploy@store.example.test:2222");
    });

    test("fails at once when a list is far too long, with one problem per list", () => {
      // GIVEN 403k host names, which ran 163 s and 2.6 GB before failing inside cdktf
      // (one of them invalid: the list is refused by its length, its entries are never examined)
      const hostnames = Array.from({ length: 403_000 }, (_, i) => (i === 5 ? "not_a_host" : `h${i}.example.test`));
      const users = Array.from({ length: 101 }, (_, i) => ({ name: `u${i}` }));
      // WHEN
      const problems = problemsOf({ hostnames, ipAddresses: Array(101).fill("192.0.2.1"), users, dockerSshOptions: Array(33).fill("-v") });
      // THEN
      expect(problems).toEqual([
        "dockerSshOptions: has 33 entries; at most 32 are supported",
        "hostnames: has 403000 entries; at most 100 are supported",
        "ipAddresses: has 101 entries; at most 100 are supported",
        "users: has 101 entries; at most 100 are supported",
      ]);
    });

    test("fails when a name prefix or user name is too long", () => {
      expect(problemsOf({ namePrefix: "p".repeat(49), users: [{ name: "u".repeat(129) }] })).toEqual([
        `namePrefix: "${"p".repeat(49)}" must be at most 48 characters`,
        `users[0].name: "${"u".repeat(129)}" must be at most 128 characters`,
      ]);
    });

    test("fails when a host name is a wildcard: the one host name rule, shared with the certificate code", () => {
      expect(problemsOf({ hostnames: ["*.example.test"], ipAddresses: ["fe80::1%eth0"] })).toEqual([
        'hostnames[0]: "*.example.test" is not a valid DNS name; use letters, digits and hyphens in dot-separated labels (no wildcards)',
        'ipAddresses[0]: "fe80::1%eth0" is not an IPv4 or IPv6 address',
      ]);
    });
  });

  describe("retention", () => {
    const rule = { repositories: "^team/", keepNewest: 10 };

    test("is off by default: no deletes, no delete API", () => {
      const settings = resolveSettings({}, "registry");
      expect(settings.retention).toBeUndefined();
      expect(settings.deleteEnabled).toBe(false);
    });

    test("applies its defaults and turns the delete API on", () => {
      const settings = resolveSettings({ retention: { rules: [rule] } }, "registry");
      expect(settings.retention).toEqual({ schedule: "03:00", dryRun: false, writeSettleSeconds: 2, rules: [{ ...rule, keepTags: [] }] });
      expect(settings.deleteEnabled).toBe(true);
    });

    test("keeps deleteEnabled: true without retention", () => {
      expect(resolveSettings({ deleteEnabled: true }, "registry").deleteEnabled).toBe(true);
    });

    test("fails when patterns use syntax grep -E does not know, naming each and the ERE spelling", () => {
      expect(
        problemsOf({
          retention: {
            rules: [
              { repositories: "^team/\\w+$", keepTags: ["^v\\d+$", "(?i)latest", "^a.*?$", "("] },
              { repositories: "", keepTags: ["ok\ttab"] },
            ],
          },
        }),
      ).toEqual([
        'retention.rules[0].repositories: "^team/\\\\w+$" uses \\w or \\W, which the registry image\'s grep -E does not know; write [A-Za-z0-9_] (or [^A-Za-z0-9_])',
        'retention.rules[0].keepTags[0]: "^v\\\\d+$" uses \\d, which grep -E does not know; write [0-9]',
        'retention.rules[0].keepTags[1]: "(?i)latest" uses a (?…) group, which grep -E does not know; use plain ( ) groups',
        'retention.rules[0].keepTags[2]: "^a.*?$" uses a lazy quantifier (*?, +?, ??), which grep -E does not know; drop the ?',
        'retention.rules[0].keepTags[3]: "(" is not a valid regular expression (POSIX extended, as grep -E reads it)',
        'retention.rules[1].repositories: "" is empty; an empty pattern matches everything: write ^ or .* if you mean that',
        'retention.rules[1].keepTags[0]: "ok\\ttab" contains a control character (tab, newline…); patterns are one line',
      ]);
    });

    test("fails when the schedule, counts or settle time are out of range", () => {
      expect(problemsOf({ retention: { schedule: "24:00", writeSettleSeconds: 61, rules: [{ repositories: "^", keepNewest: -1, untaggedDays: 1.5 }] } })).toEqual([
        'retention.schedule: "24:00" must be a daily time in UTC as HH:MM, e.g. "03:30"',
        "retention.writeSettleSeconds: 61 must be at most 60; writes are refused that long",
        "retention.rules[0].keepNewest: -1 must be 0 or more tags",
        expect.stringMatching(/^retention\.rules\[0\]\.untaggedDays: 1\.5 /),
      ]);
    });

    test("fails when combined with deleteEnabled: false, without the proxy, or without rules", () => {
      expect(problemsOf({ deleteEnabled: false, proxy: false, retention: { rules: [] } })).toEqual([
        "retention.rules: is empty; add a rule (repositories plus keepNewest, keepTags or untaggedDays) or remove retention",
        "deleteEnabled: is false, but retention deletes tags and manifests and turns the delete API on; remove deleteEnabled or retention",
        "retention: needs proxy: true: the proxy holds writes while the garbage collector runs; enable the proxy or remove retention",
      ]);
    });

    test("fails on unknown keys in a rule", () => {
      expect(problemsOf({ retention: { rules: [{ repositories: "^", keep: 3 }] } })).toEqual([
        'retention.rules[0]: unknown key(s) "keep"; check the spelling against the configuration reference in docs/configuration.md',
      ]);
    });
  });

  describe("one validation layer (issue #8, item 7)", () => {
    test("fails when bcryptCost is above 15, the only bound there is", () => {
      expect(problemsOf({ bcryptCost: 16 })).toEqual(["bcryptCost: 16 must be at most 15; every authenticated request pays this cost"]);
    });

    test("lists at most MAX_LISTED_PROBLEMS problems in the message, and counts the rest", () => {
      const error = new ConfigError(Array.from({ length: MAX_LISTED_PROBLEMS + 7 }, (_, i) => `p${i}`), "configuration in x.yml");
      expect(error.message.split("\n")).toHaveLength(1 + MAX_LISTED_PROBLEMS + 1);
      expect(error.message).toMatch(/^Invalid configuration in x\.yml:\n  - p0\n/);
      expect(error.message).toMatch(/\n  … and 7 more problems$/);
    });
  });
});

describe("mirrors", () => {
  const hub = { name: "hub", upstream: "docker.io", port: 5001 };

  test("takes maxSizeMb as a whole number of MiB from 8, and leaves it unset by default (issue 20)", () => {
    expect(resolveSettings({ mirrors: [{ ...hub, maxSizeMb: 20480 }] }, "registry").mirrors[0].maxSizeMb).toBe(20480);
    expect(resolveSettings({ mirrors: [hub] }, "registry").mirrors[0].maxSizeMb).toBeUndefined();
    expect(problemsOf({ mirrors: [{ ...hub, maxSizeMb: 4 }] })).toEqual(["mirrors[0].maxSizeMb: 4 must be at least 8 (MiB); make it larger than the largest image pulled through the mirror"]);
    expect(problemsOf({ mirrors: [{ ...hub, maxSizeMb: 1.5 }] })).toEqual([expect.stringMatching(/^mirrors\[0\]\.maxSizeMb: .*must be a whole number of MiB/)]);
  });

  test("defaults: Docker Hub's API host for docker.io, https://<upstream> otherwise, 168h TTL, users required", () => {
    const settings = resolveSettings({ mirrors: [hub, { name: "ghcr", upstream: "ghcr.io", port: 5002, upstreamUrl: "https://ghcr.example.test/" }, { name: "quay", upstream: "quay.io", port: 5003 }] }, "registry");
    expect(settings.mirrors.map((m) => [m.upstreamUrl, m.ttl, m.anonymousPull])).toEqual([
      ["https://registry-1.docker.io", "168h", false],
      ["https://ghcr.example.test", "168h", false],
      ["https://quay.io", "168h", false],
    ]);
  });

  test("resolves upstreamCaFile against projectDirectory", () => {
    const settings = resolveSettings({ projectDirectory: "/srv/project", mirrors: [{ ...hub, upstreamCaFile: "pki/upstream.crt" }] }, "registry");
    expect(settings.mirrors[0].upstreamCaFile).toBe("/srv/project/pki/upstream.crt");
  });

  test("fails on every mirror problem at once, naming field and remedy", () => {
    expect(
      problemsOf({
        publicPort: 5000,
        mirrors: [
          { ...hub, name: "Hub_1", port: 5000, ttl: "0" },
          { ...hub, upstream: "https://ghcr.io", username: "bot" },
          { ...hub, name: "k8s", upstream: "docker.io", port: 5003, ttl: "7d", password: "only-a-password" },
        ],
      }),
    ).toEqual([
      'mirrors[0].name: "Hub_1" must be 1-32 lowercase letters, digits and inner hyphens, e.g. "hub" or "ghcr"',
      'mirrors[0].ttl: "0" must be at least 1m; 0 would keep cached content forever (unbounded cache)',
      'mirrors[1].upstream: "https://ghcr.io" is not a registry name like docker.io, ghcr.io or registry.example.test:5000 (host[:port], no scheme, no path)',
      'mirrors[2].ttl: "7d" is not a duration like 168h, 72h or 1h30m (hours, minutes, seconds)',
      "mirrors[0].port: 5000 is also publicPort; every mirror needs its own port",
      'mirrors[1].password: is required with username "bot"; set REGISTRY_UPSTREAM_PASSWORD_HUB or upstreamPasswords.hub in the secrets file',
      'mirrors[2].upstream: "docker.io" is already mirrored by mirrors[0]; clients can use one mirror per upstream',
      "mirrors[2].username: is required: a password for the upstream is set (REGISTRY_UPSTREAM_PASSWORD_K8S or the secrets file) but no username",
    ]);
    expect(
      problemsOf({
        publicPort: 5000,
        mirrors: [
          { ...hub, port: 5000 },
          { ...hub, port: 5002, username: "bot" },
          { name: "k8s", upstream: "registry.k8s.io", port: 5002, password: "only-a-password" },
        ],
      }),
    ).toEqual([
      "mirrors[0].port: 5000 is also publicPort; every mirror needs its own port",
      'mirrors[1].name: "hub" is listed twice; each mirror needs a unique name',
      'mirrors[1].upstream: "docker.io" is already mirrored by mirrors[0]; clients can use one mirror per upstream',
      'mirrors[1].password: is required with username "bot"; set REGISTRY_UPSTREAM_PASSWORD_HUB or upstreamPasswords.hub in the secrets file',
      "mirrors[2].port: 5002 is also mirrors[1].port; every mirror needs its own port",
      "mirrors[2].username: is required: a password for the upstream is set (REGISTRY_UPSTREAM_PASSWORD_K8S or the secrets file) but no username",
    ]);
  });

  test("fails without the proxy or TLS, and never shows an upstream password", () => {
    expect(problemsOf({ proxy: false, mirrors: [{ ...hub, username: "u", password: "s3cret\nline" }] })).toEqual([
      "mirrors: need proxy: true and TLS (tls.mode other than 'none'): mirrors are served by the proxy; remove them or enable both",
      "mirrors[0].password: contains a line break; set another password in REGISTRY_UPSTREAM_PASSWORD_HUB or the secrets file",
    ]);
    expect(problemsOf({ tls: { mode: "none" }, mirrors: [hub] })).toHaveLength(1);
  });
});
