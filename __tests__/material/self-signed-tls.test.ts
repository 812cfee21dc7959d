import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as tls from "tls";
import { MaterialStore } from "../../material/material-store";
import { ensureSelfSignedTls } from "../../material/self-signed-tls";
import { ServerIdentity } from "../../material/tls-material";
import { FIXED_NOW, fixedEntropy, TEST_KEYS } from "../fixtures/fixed-entropy";
import { problemsOf } from "../fixtures/problems-of";
import { certificateFacts } from "../fixtures/x509-der";

const DAY_MS = 24 * 60 * 60 * 1000;
const IDENTITY: ServerIdentity = { hostnames: ["registry.example.test", "localhost"], ipAddresses: ["127.0.0.1", "::1"] };
const FILES = ["ca.key", "ca.crt", "server.key", "server.crt"];
const OLD = new Date("2001-01-01T00:00:00Z");

function later(days: number): Date {
  return new Date(FIXED_NOW.getTime() + days * DAY_MS);
}

/**
 * A TLS handshake on loopback with the certificate chain as server: Node's OpenSSL verifies the
 * chain for a TLS server and the name. Resolves "ok" or the client's error code.
 */
async function handshake(material: { certificateChainPem: string; privateKeyPem: string }, client: tls.ConnectionOptions): Promise<string> {
  const server = tls.createServer({ key: material.privateKeyPem, cert: material.certificateChainPem });
  server.on("tlsClientError", () => undefined);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  try {
    return await new Promise<string>((resolve) => {
      const socket = tls.connect({ ...client, host: "127.0.0.1", port }, () => {
        socket.end();
        resolve("ok");
      });
      socket.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe("ensureSelfSignedTls", () => {
  let root: string;
  let store: MaterialStore;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "self-signed-tls-"));
    store = new MaterialStore(root);
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  describe("first synth", () => {
    let tls: ReturnType<typeof ensureSelfSignedTls>;
    let ca: crypto.X509Certificate;
    let leaf: crypto.X509Certificate;
    beforeEach(() => {
      tls = ensureSelfSignedTls(store, IDENTITY, fixedEntropy());
      ca = new crypto.X509Certificate(tls.caCertificatePem);
      leaf = new crypto.X509Certificate(tls.certificatePem);
    });

    test("issues a CA with the configured name, CA flag and critical key usages", () => {
      expect(ca.ca).toBe(true);
      expect(ca.subject).toBe("CN=registry-stack CA");
      expect(ca.issuer).toBe("CN=registry-stack CA");
      expect(ca.verify(ca.publicKey)).toBe(true);
      const facts = certificateFacts(tls.caCertificatePem);
      expect(facts.basicConstraints).toEqual({ critical: true, ca: true });
      expect(facts.keyUsage).toEqual({ critical: true, usages: ["keyCertSign", "cRLSign"] });
      expect(facts.subjectKeyIdentifier).toMatch(/^[0-9A-F]{40}$/);
      expect(facts.signatureAlgorithm).toBe("sha256WithRSAEncryption");
    });

    test("issues a server certificate for every host name and IP, signed by the CA", () => {
      expect(leaf.ca).toBe(false);
      expect(leaf.subject).toBe("CN=registry.example.test");
      expect(leaf.subjectAltName).toBe("DNS:registry.example.test, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1");
      expect(leaf.checkIP("::1")).toBe("::1");
      expect(leaf.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
      expect(leaf.checkIssued(ca)).toBe(true);
      expect(leaf.verify(ca.publicKey)).toBe(true);
      expect(leaf.checkPrivateKey(crypto.createPrivateKey(tls.privateKeyPem))).toBe(true);
      const facts = certificateFacts(tls.certificatePem);
      expect(facts.signatureAlgorithm).toBe("sha256WithRSAEncryption");
      expect(facts.keyUsage).toEqual({ critical: true, usages: ["digitalSignature", "keyEncipherment"] });
      expect(facts.basicConstraints).toEqual({ critical: false, ca: false });
    });

    test("names the CA's key, not the leaf's, as authority key identifier", () => {
      const caSki = certificateFacts(tls.caCertificatePem).subjectKeyIdentifier;
      const leafFacts = certificateFacts(tls.certificatePem);
      expect(caSki).toBeDefined();
      expect(leafFacts.authorityKeyIdentifier).toBe(caSki);
      expect(leafFacts.subjectKeyIdentifier).toMatch(/^[0-9A-F]{40}$/);
      expect(leafFacts.subjectKeyIdentifier).not.toBe(caSki);
    });

    test("is accepted by a TLS client trusting only the CA, for every name and address, and refused for others", async () => {
      // Issued now: the handshake verifies against the clock, not FIXED_NOW.
      fs.mkdirSync(path.join(root, "now"));
      const current = ensureSelfSignedTls(new MaterialStore(path.join(root, "now")), IDENTITY, fixedEntropy({ now: new Date() }));
      const ca = current.caCertificatePem;
      expect(await handshake(current, { ca, servername: "registry.example.test" })).toBe("ok");
      expect(await handshake(current, { ca, servername: "localhost" })).toBe("ok");
      expect(await handshake(current, { ca })).toBe("ok"); // checked against IP 127.0.0.1
      expect(await handshake(current, { ca, servername: "other.example.test" })).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
      expect(await handshake(current, { servername: "registry.example.test" })).toBe("SELF_SIGNED_CERT_IN_CHAIN");
    });

    test("backdates by 5 minutes and is valid for 365 days (CA: 3650)", () => {
      const notBefore = new Date(FIXED_NOW.getTime() - 5 * 60 * 1000);
      expect(new Date(leaf.validFrom)).toEqual(notBefore);
      expect(new Date(leaf.validTo)).toEqual(later(365));
      expect(tls.notAfter).toEqual(later(365));
      expect(new Date(ca.validFrom)).toEqual(notBefore);
      expect(new Date(ca.validTo)).toEqual(later(3650));
    });

    test("uses positive 16-byte serial numbers from the entropy", () => {
      for (const cert of [ca, leaf]) {
        expect(cert.serialNumber).toMatch(/^[4-7][0-9A-F]{31}$/);
      }
      expect(ca.serialNumber).not.toBe(leaf.serialNumber);
    });

    test("uses the entropy's keys and persists them 0600, certificates 0644", () => {
      expect(store.read("ca.key")).toBe(TEST_KEYS[0]);
      expect(tls.privateKeyPem).toBe(TEST_KEYS[1]);
      expect(store.read("server.crt")).toBe(tls.certificatePem);
      expect(store.read("ca.crt")).toBe(tls.caCertificatePem);
      const modes = Object.fromEntries(FILES.map((f) => [f, fs.statSync(store.path(f)).mode & 0o777]));
      expect(modes).toEqual({ "ca.key": 0o600, "ca.crt": 0o644, "server.key": 0o600, "server.crt": 0o644 });
    });

    test("chains leaf then CA for nginx", () => {
      expect(tls.certificateChainPem).toBe(tls.certificatePem + tls.caCertificatePem);
      expect(tls.certificatePem).not.toContain("\r");
    });
  });

  test("returns stored material byte for byte and writes nothing on the next synth", () => {
    // GIVEN
    const first = ensureSelfSignedTls(store, IDENTITY, fixedEntropy());
    FILES.forEach((f) => fs.utimesSync(store.path(f), OLD, OLD));
    const entropy = fixedEntropy({ seed: "another run", now: later(100) });
    // WHEN
    const second = ensureSelfSignedTls(store, { hostnames: ["LOCALHOST", "registry.example.test"], ipAddresses: ["0:0::1", "127.0.0.1"] }, entropy);
    // THEN
    expect(second).toEqual(first);
    expect(entropy.bytesServed).toBe(0);
    expect(entropy.keysServed).toBe(0);
    FILES.forEach((f) => expect(fs.statSync(store.path(f)).mtime).toEqual(OLD));
  });

  test("re-issues the server certificate, keeping its key and the CA, when the names change", () => {
    // GIVEN
    const first = ensureSelfSignedTls(store, IDENTITY, fixedEntropy());
    // WHEN
    const second = ensureSelfSignedTls(store, { ...IDENTITY, ipAddresses: ["127.0.0.1", "10.0.0.5"] }, fixedEntropy({ seed: "2" }));
    // THEN
    const leaf = new crypto.X509Certificate(second.certificatePem);
    expect(leaf.subjectAltName).toBe("DNS:registry.example.test, DNS:localhost, IP Address:127.0.0.1, IP Address:10.0.0.5");
    expect(second.certificatePem).not.toBe(first.certificatePem);
    expect(second.privateKeyPem).toBe(first.privateKeyPem);
    expect(second.caCertificatePem).toBe(first.caCertificatePem);
    expect(store.read("server.crt")).toBe(second.certificatePem);
  });

  test("keeps a server certificate that expires after the renewal window", () => {
    const first = ensureSelfSignedTls(store, IDENTITY, fixedEntropy());
    const second = ensureSelfSignedTls(store, IDENTITY, fixedEntropy({ now: later(334) }));
    expect(second.certificatePem).toBe(first.certificatePem);
  });

  test("re-issues the server certificate when it expires within renewBeforeDays", () => {
    // GIVEN
    const first = ensureSelfSignedTls(store, IDENTITY, fixedEntropy());
    // WHEN
    const second = ensureSelfSignedTls(store, IDENTITY, fixedEntropy({ seed: "2", now: later(336) }));
    // THEN
    expect(second.certificatePem).not.toBe(first.certificatePem);
    expect(second.notAfter).toEqual(later(336 + 365));
    expect(second.privateKeyPem).toBe(first.privateKeyPem);
    expect(second.caCertificatePem).toBe(first.caCertificatePem);
  });

  test("caps the server certificate at the CA's expiry", () => {
    ensureSelfSignedTls(store, IDENTITY, fixedEntropy());
    fs.rmSync(store.path("server.crt"));
    const tls = ensureSelfSignedTls(store, IDENTITY, fixedEntropy({ now: later(3500) }));
    expect(tls.notAfter).toEqual(later(3650));
  });

  test("issues a new CA, and re-issues the server certificate keeping its key, after the documented rotation", () => {
    // GIVEN ca.key and ca.crt moved out of the material folder (README, "Rotating passwords and certificates")
    const first = ensureSelfSignedTls(store, IDENTITY, fixedEntropy());
    fs.renameSync(store.path("ca.key"), path.join(root, "..", `${path.basename(root)}-old-ca.key`));
    fs.rmSync(store.path("ca.crt"));
    // WHEN
    const second = ensureSelfSignedTls(store, IDENTITY, fixedEntropy({ firstKey: 3 }));
    // THEN
    const ca = new crypto.X509Certificate(second.caCertificatePem);
    expect(second.caCertificatePem).not.toBe(first.caCertificatePem);
    expect(store.read("ca.key")).toBe(TEST_KEYS[3]);
    expect(new crypto.X509Certificate(second.certificatePem).verify(ca.publicKey)).toBe(true);
    expect(second.privateKeyPem).toBe(first.privateKeyPem);
  });

  describe("an existing CA is never replaced", () => {
    const ROTATE = /rotate the CA: move ca\.key and ca\.crt out of the material folder .*README\.md, "Rotating passwords and certificates"/;
    let hashes: () => Record<string, string>;
    let before: Record<string, string>;
    beforeEach(() => {
      ensureSelfSignedTls(store, IDENTITY, fixedEntropy());
      hashes = () =>
        Object.fromEntries(fs.readdirSync(root).map((f) => [f, crypto.createHash("sha256").update(fs.readFileSync(path.join(root, f))).digest("hex")]));
    });
    const run = (now = FIXED_NOW) => () => ensureSelfSignedTls(store, IDENTITY, fixedEntropy({ seed: "next", now, firstKey: 4 }));
    const corrupt = (file: string, text: string) => {
      fs.writeFileSync(store.path(file), text);
      before = hashes();
    };

    test("fails when ca.key is missing while ca.crt exists", () => {
      // GIVEN
      fs.rmSync(store.path("ca.key"));
      before = hashes();
      // WHEN
      const problems = problemsOf(run());
      // THEN
      expect(problems).toEqual([expect.stringMatching(new RegExp(`^${store.path("ca.key")}: is missing while ${store.path("ca.crt")} exists; restore ca.key and ca.crt from your backup, or `))]);
      expect(problems[0]).toMatch(ROTATE);
      expect(hashes()).toEqual(before);
    });

    test("fails when ca.crt is missing while ca.key exists", () => {
      fs.rmSync(store.path("ca.crt"));
      before = hashes();
      expect(problemsOf(run())).toEqual([expect.stringMatching(new RegExp(`^${store.path("ca.crt")}: is missing while ${store.path("ca.key")} exists`))]);
      expect(hashes()).toEqual(before);
    });

    test("fails when ca.key is corrupted, naming the file", () => {
      corrupt("ca.key", "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n");
      expect(problemsOf(run())).toEqual([expect.stringMatching(new RegExp(`^${store.path("ca.key")}: is not a PEM private key; restore`))]);
      expect(hashes()).toEqual(before);
    });

    test("fails when ca.crt is corrupted, naming the file", () => {
      corrupt("ca.crt", "not a certificate\n");
      expect(problemsOf(run())).toEqual([expect.stringMatching(new RegExp(`^${store.path("ca.crt")}: is not a PEM certificate; restore`))]);
      expect(hashes()).toEqual(before);
    });

    test("fails when ca.key does not belong to ca.crt", () => {
      corrupt("ca.key", TEST_KEYS[5]);
      expect(problemsOf(run())).toEqual([expect.stringMatching(new RegExp(`^${store.path("ca.key")}: is not the key of ${store.path("ca.crt")}; restore`))]);
      expect(hashes()).toEqual(before);
    });

    test("fails when ca.crt is not a CA certificate", () => {
      corrupt("ca.crt", fs.readFileSync(store.path("server.crt"), "utf8"));
      expect(problemsOf(run())).toEqual(
        expect.arrayContaining([expect.stringMatching(new RegExp(`^${store.path("ca.crt")}: is not a CA certificate \\(basicConstraints CA:FALSE\\)`))]),
      );
      expect(hashes()).toEqual(before);
    });

    test("fails when the clock is behind the CA's start date, telling to fix the clock", () => {
      before = hashes();
      const problems = problemsOf(run(new Date(FIXED_NOW.getTime() - DAY_MS)));
      expect(problems).toEqual([
        `${store.path("ca.crt")}: is not valid before 2025-01-15T11:55:00.000Z, but the clock says 2025-01-14T12:00:00.000Z; fix the system clock (the CA is kept)`,
      ]);
      expect(hashes()).toEqual(before);
    });

    test("fails when the CA expires within the renewal window, telling to rotate it", () => {
      before = hashes();
      const problems = problemsOf(run(later(3625)));
      expect(problems).toEqual([expect.stringMatching(new RegExp(`^${store.path("ca.crt")}: expires on 2035-01-13T12:00:00.000Z, within the renewal window; `))]);
      expect(problems[0]).toMatch(ROTATE);
      expect(hashes()).toEqual(before);
    });

    test("fails when the CA has expired", () => {
      before = hashes();
      expect(problemsOf(run(later(4000)))).toEqual([expect.stringMatching(new RegExp(`^${store.path("ca.crt")}: expired on 2035-01-13T12:00:00.000Z; rotate the CA`))]);
      expect(hashes()).toEqual(before);
    });
  });

  test("uses the first IP address as common name when there is no host name", () => {
    const tls = ensureSelfSignedTls(store, { hostnames: [], ipAddresses: ["192.0.2.10"] }, fixedEntropy());
    expect(new crypto.X509Certificate(tls.certificatePem).subject).toBe("CN=192.0.2.10");
  });

  test("fails when renewBeforeDays is not shorter than the validity", () => {
    expect(() => ensureSelfSignedTls(store, IDENTITY, fixedEntropy(), { serverValidityDays: 30, renewBeforeDays: 30 })).toThrow(
      "serverValidityDays: 30 must be greater than renewBeforeDays (30)",
    );
  });

  test("honours caCommonName and validity options", () => {
    const tls = ensureSelfSignedTls(store, IDENTITY, fixedEntropy(), { caCommonName: "Team CA", serverValidityDays: 90, caValidityDays: 400, renewBeforeDays: 10 });
    expect(new crypto.X509Certificate(tls.caCertificatePem).subject).toBe("CN=Team CA");
    expect(tls.notAfter).toEqual(later(90));
    expect(new Date(new crypto.X509Certificate(tls.caCertificatePem).validTo)).toEqual(later(400));
  });
});
