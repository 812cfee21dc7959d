import {
  distinctBlobSize,
  failureMessage,
  filterNames,
  formatBytes,
  formatCreated,
  imageSize,
  isIndex,
  MEDIA_TYPES,
  nextLink,
  platformLabel,
  platformManifests,
  pullCommand,
  registryErrorCode,
  retryAfterSeconds,
  shortDigest,
} from "../../ui/src/format";

const DIGEST = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

describe("web UI formatting helpers", () => {
  test("formats sizes in binary units", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1536)).toBe("1.50 KiB");
    expect(formatBytes(300 * 1024 * 1024)).toBe("300.0 MiB");
    expect(formatBytes(-1)).toBe("–");
  });

  test("shortens a digest to 12 hex digits and keeps anything else", () => {
    expect(shortDigest(DIGEST)).toBe("sha256:0123456789ab");
    expect(shortDigest("latest")).toBe("latest");
  });

  test("finds the next page in a registry Link header", () => {
    expect(nextLink('</v2/_catalog?last=a%2Fb&n=100>; rel="next"')).toBe("/v2/_catalog?last=a%2Fb&n=100");
    expect(nextLink('</v2/x>; rel="prev", </v2/y?last=z>; rel="next"')).toBe("/v2/y?last=z");
    expect(nextLink('</v2/x>; rel="prev"')).toBeUndefined();
    expect(nextLink(null)).toBeUndefined();
  });

  test("reads Retry-After as seconds or as a date", () => {
    expect(retryAfterSeconds("60")).toBe(60);
    expect(retryAfterSeconds("Sun, 29 Nov 2026 04:01:00 GMT", Date.parse("Sun, 29 Nov 2026 04:00:00 GMT"))).toBe(60);
    expect(retryAfterSeconds("soon")).toBeUndefined();
    expect(retryAfterSeconds(null)).toBeUndefined();
  });

  test("tells an index from an image and lists its platforms without attestations", () => {
    const index = {
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: [
        { digest: "sha256:a", size: 1, platform: { os: "linux", architecture: "amd64" } },
        { digest: "sha256:b", size: 1, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
        { digest: "sha256:c", size: 1, platform: { os: "unknown", architecture: "unknown" }, annotations: { "vnd.docker.reference.type": "attestation-manifest" } },
      ],
    };
    expect(isIndex(index)).toBe(true);
    expect(isIndex({ manifests: [] }, MEDIA_TYPES.dockerList)).toBe(true);
    expect(isIndex({ config: { digest: "sha256:x", size: 1 }, layers: [] }, MEDIA_TYPES.dockerManifest)).toBe(false);
    expect(platformManifests(index).map((m) => platformLabel(m.platform))).toEqual(["linux/amd64", "linux/arm64/v8"]);
    expect(platformLabel(undefined)).toBe("unknown");
  });

  test("sums an image's compressed blobs and counts shared blobs once across platforms", () => {
    const shared = { digest: "sha256:shared", size: 1000 };
    const a = { config: { digest: "sha256:ca", size: 10 }, layers: [shared, { digest: "sha256:la", size: 500 }] };
    const b = { config: { digest: "sha256:cb", size: 20 }, layers: [shared] };
    expect(imageSize(a)).toBe(1510);
    expect(imageSize(b)).toBe(1020);
    expect(distinctBlobSize([a, b])).toBe(1530);
  });

  test("shows created times in UTC to the minute, and a dash for missing or zero times", () => {
    expect(formatCreated("2026-03-04T05:06:07.123456789Z")).toBe("2026-03-04 05:06 UTC");
    expect(formatCreated("1970-01-01T00:00:00Z")).toBe("–");
    expect(formatCreated(undefined)).toBe("–");
    expect(formatCreated("garbage")).toBe("–");
  });

  test("filters names case-insensitively by substring", () => {
    expect(filterNames(["apps/web", "Apps/API", "base/debian"], " apps/ ")).toEqual(["apps/web", "Apps/API"]);
    expect(filterNames(["a", "b"], "")).toEqual(["a", "b"]);
  });

  test("writes the pull command with the address the page was opened at", () => {
    expect(pullCommand("registry.example.test:5000", "team/app", "1.0")).toBe("docker pull registry.example.test:5000/team/app:1.0");
  });

  test("reads the registry's error body, and nothing from an HTML page", () => {
    expect(registryErrorCode('{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}')).toEqual({ code: "UNSUPPORTED", message: "The operation is unsupported." });
    expect(registryErrorCode("<html>404</html>")).toBeUndefined();
  });

  test("explains failures instead of showing a bare error code", () => {
    expect(failureMessage(401, { code: "UNAUTHORIZED", message: "authentication required" }, undefined, "sign in")).toBe("Wrong user name or password.");
    expect(failureMessage(429, { code: "TOOMANYREQUESTS", message: "" }, 60, "sign in")).toBe("Too many sign-in attempts from your address. Try again in 60 seconds.");
    expect(failureMessage(405, { code: "UNSUPPORTED", message: "The operation is unsupported." }, undefined, "delete tags in a/b")).toMatch(/deleteEnabled is false/);
    expect(failureMessage(403, { code: "DENIED", message: "requested access to the resource is denied" }, undefined, "delete tags in a/b")).toBe("Your account may not delete tags in a/b.");
    expect(failureMessage(400, { code: "DIGEST_INVALID", message: "provided digest did not match uploaded content" }, undefined, "delete tags in a/b")).toMatch(/distribution 2\.x\) deletes only whole manifests/);
    expect(failureMessage(500, undefined, undefined, "list the repositories")).toBe("Could not list the repositories: HTTP 500.");
    for (const status of [401, 403, 405, 429, 503]) expect(failureMessage(status, { code: "UNSUPPORTED", message: "x" }, 1, "act")).not.toMatch(/^UNSUPPORTED|: UNSUPPORTED/);
  });
});
