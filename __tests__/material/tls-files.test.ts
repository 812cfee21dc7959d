import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigError } from "../../config/config-error";
import { loadTlsFiles, TlsFiles } from "../../material/tls-files";
import { ServerIdentity } from "../../material/tls-material";
import { FIXED_NOW, TEST_KEYS } from "../fixtures/fixed-entropy";
import { problemsOf } from "../fixtures/problems-of";
import { issueTestCertificate, TestCertificate } from "../fixtures/test-pki";

const DAY_MS = 24 * 60 * 60 * 1000;
const IDENTITY: ServerIdentity = { hostnames: ["registry.example.test", "localhost"], ipAddresses: ["127.0.0.1"] };
const BEFORE = new Date(FIXED_NOW.getTime() - 10 * DAY_MS);
const AFTER = new Date(FIXED_NOW.getTime() + 90 * DAY_MS);

const rootCa = issueTestCertificate({ commonName: "Test Root", keyIndex: 0, isCa: true, notBefore: BEFORE, notAfter: AFTER });
const otherCa = issueTestCertificate({ commonName: "Other CA", keyIndex: 4, isCa: true, notBefore: BEFORE, notAfter: AFTER });
const intermediate = issueTestCertificate({ commonName: "Test Intermediate", keyIndex: 2, isCa: true, issuer: rootCa, notBefore: BEFORE, notAfter: AFTER });

function leaf(overrides: Partial<Parameters<typeof issueTestCertificate>[0]> = {}): TestCertificate {
  return issueTestCertificate({
    commonName: "registry.example.test",
    keyIndex: 1,
    issuer: rootCa,
    dnsNames: ["registry.example.test", "localhost"],
    ipAddresses: ["127.0.0.1"],
    notBefore: BEFORE,
    notAfter: AFTER,
    ...overrides,
  });
}

describe("loadTlsFiles", () => {
  let root: string;
  beforeEach(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), "tls-files-"))));
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  function files(contents: { cert?: string; key?: string; ca?: string }): TlsFiles {
    const paths = { certificateFile: path.join(root, "cert.pem"), keyFile: path.join(root, "key.pem"), caFile: path.join(root, "ca.pem") };
    if (contents.cert !== undefined) fs.writeFileSync(paths.certificateFile, contents.cert);
    if (contents.key !== undefined) fs.writeFileSync(paths.keyFile, contents.key);
    if (contents.ca !== undefined) fs.writeFileSync(paths.caFile, contents.ca);
    return paths;
  }

  test("loads a certificate that covers every name, matches its key and chains to the CA", () => {
    // GIVEN
    const server = leaf();
    const input = files({ cert: server.certPem, key: server.keyPem, ca: rootCa.certPem });
    // WHEN
    const tls = loadTlsFiles(input, IDENTITY, FIXED_NOW);
    // THEN
    expect(new crypto.X509Certificate(tls.certificatePem).subject).toBe("CN=registry.example.test");
    expect(tls.privateKeyPem).toBe(TEST_KEYS[1]);
    expect(tls.caCertificatePem).toBe(rootCa.certPem);
    expect(tls.certificateChainPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(new crypto.X509Certificate(tls.certificateChainPem.split(/(?<=-----END CERTIFICATE-----\n)/)[1]).subject).toBe("CN=Test Root");
    expect(tls.notAfter).toEqual(AFTER);
  });

  test("accepts intermediates appended to the certificate file and puts them in the chain", () => {
    // GIVEN
    const server = leaf({ issuer: intermediate });
    const input = files({ cert: server.certPem + intermediate.certPem, key: server.keyPem, ca: rootCa.certPem });
    // WHEN
    const tls = loadTlsFiles(input, IDENTITY, FIXED_NOW);
    // THEN
    const subjects = tls.certificateChainPem.split(/(?<=-----END CERTIFICATE-----\n)/).map((pem) => new crypto.X509Certificate(pem).subject);
    expect(subjects).toEqual(["CN=registry.example.test", "CN=Test Intermediate", "CN=Test Root"]);
    expect(new crypto.X509Certificate(tls.certificatePem).subject).toBe("CN=registry.example.test");
  });

  test("accepts a wildcard certificate for a matching host name", () => {
    const server = leaf({ dnsNames: ["*.example.test"] });
    const input = files({ cert: server.certPem, key: server.keyPem, ca: rootCa.certPem });
    expect(() => loadTlsFiles(input, { hostnames: ["registry.example.test"], ipAddresses: [] }, FIXED_NOW)).not.toThrow();
  });

  test("fails when the key does not belong to the certificate", () => {
    const input = files({ cert: leaf().certPem, key: TEST_KEYS[3], ca: rootCa.certPem });
    expect(problemsOf(() => loadTlsFiles(input, IDENTITY, FIXED_NOW))).toEqual([
      `tls.keyFile "${input.keyFile}": the key does not belong to the certificate in tls.certificateFile "${input.certificateFile}"; use the private key the certificate was issued for`,
    ]);
  });

  test("fails when a host name or IP address is not covered, ignoring the subject CN", () => {
    // GIVEN a certificate naming the host only in its CN
    const server = leaf({ dnsNames: ["localhost"] });
    const input = files({ cert: server.certPem, key: server.keyPem, ca: rootCa.certPem });
    // WHEN
    const problems = problemsOf(() => loadTlsFiles(input, { hostnames: ["registry.example.test", "localhost"], ipAddresses: ["127.0.0.1", "10.0.0.5"] }, FIXED_NOW));
    // THEN
    const fix = "(certificate names: DNS:localhost, IP Address:127.0.0.1); re-issue the certificate with it in subjectAltName, or stop using that name";
    expect(problems).toEqual([
      `tls.certificateFile "${input.certificateFile}": does not cover host name "registry.example.test" ${fix}`,
      `tls.certificateFile "${input.certificateFile}": does not cover IP address "10.0.0.5" ${fix}`,
    ]);
  });

  test("fails when the certificate has expired", () => {
    const server = leaf();
    const input = files({ cert: server.certPem, key: server.keyPem, ca: rootCa.certPem });
    const problems = problemsOf(() => loadTlsFiles(input, IDENTITY, new Date(AFTER.getTime() + DAY_MS)));
    expect(problems[0]).toBe(`tls.certificateFile "${input.certificateFile}": expired on ${AFTER.toISOString()}; renew the certificate`);
  });

  test("fails when the certificate is not valid yet", () => {
    const notBefore = new Date(FIXED_NOW.getTime() + DAY_MS);
    const server = leaf({ notBefore });
    const input = files({ cert: server.certPem, key: server.keyPem, ca: rootCa.certPem });
    expect(problemsOf(() => loadTlsFiles(input, IDENTITY, FIXED_NOW))).toEqual([
      `tls.certificateFile "${input.certificateFile}": is not valid before ${notBefore.toISOString()}; check the clock or use a certificate valid now`,
    ]);
  });

  test("fails when the CA did not issue the certificate", () => {
    const server = leaf();
    const input = files({ cert: server.certPem, key: server.keyPem, ca: otherCa.certPem });
    expect(problemsOf(() => loadTlsFiles(input, IDENTITY, FIXED_NOW))).toEqual([
      `tls.caFile "${input.caFile}": does not verify the certificate in tls.certificateFile "${input.certificateFile}" (issuer "CN=Test Root"); ` +
        "use the CA that signed it, or append the missing intermediate certificates to tls.certificateFile",
    ]);
  });

  test("fails when a same-named impostor CA signed nothing", () => {
    const impostor = issueTestCertificate({ commonName: "Test Root", keyIndex: 5, isCa: true, notBefore: BEFORE, notAfter: AFTER });
    const server = leaf();
    const input = files({ cert: server.certPem, key: server.keyPem, ca: impostor.certPem });
    expect(problemsOf(() => loadTlsFiles(input, IDENTITY, FIXED_NOW))[0]).toMatch(/^tls\.caFile ".*": does not verify the certificate/);
  });

  test("fails when an intermediate is missing from the certificate file", () => {
    const server = leaf({ issuer: intermediate });
    const input = files({ cert: server.certPem, key: server.keyPem, ca: rootCa.certPem });
    expect(problemsOf(() => loadTlsFiles(input, IDENTITY, FIXED_NOW))[0]).toContain(
      '(issuer "CN=Test Intermediate"); use the CA that signed it, or append the missing intermediate certificates to tls.certificateFile',
    );
  });

  test("fails when the CA has expired", () => {
    const expiredCa = issueTestCertificate({ commonName: "Old Root", keyIndex: 0, isCa: true, notBefore: BEFORE, notAfter: new Date(FIXED_NOW.getTime() - DAY_MS) });
    const server = leaf({ issuer: expiredCa });
    const input = files({ cert: server.certPem, key: server.keyPem, ca: expiredCa.certPem });
    expect(problemsOf(() => loadTlsFiles(input, IDENTITY, FIXED_NOW))).toEqual([
      `tls.caFile "${input.caFile}" (certificate "CN=Old Root"): expired on ${new Date(FIXED_NOW.getTime() - DAY_MS).toISOString()}; renew the certificate`,
    ]);
  });

  test("fails when files are missing, reporting all of them at once", () => {
    const input = files({});
    const error = (() => {
      try {
        loadTlsFiles(input, IDENTITY, FIXED_NOW);
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error("expected a ConfigError");
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.problems).toEqual([
      `tls.certificateFile "${input.certificateFile}": the file does not exist; point it at the PEM server certificate`,
      `tls.keyFile "${input.keyFile}": the file does not exist; point it at the server certificate's PEM private key`,
      `tls.caFile "${input.caFile}": the file does not exist; point it at the PEM certificate of the CA that issued the server certificate`,
    ]);
    expect(error.message).toBe(`Invalid TLS files:\n${error.problems.map((p) => `  - ${p}`).join("\n")}`);
  });

  test("fails when files cannot be parsed", () => {
    const input = files({
      cert: "not a certificate",
      key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
      ca: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    });
    const problems = problemsOf(() => loadTlsFiles(input, IDENTITY, FIXED_NOW));
    expect(problems).toHaveLength(3);
    expect(problems[0]).toBe(
      `tls.certificateFile "${input.certificateFile}": contains no PEM certificate ("-----BEGIN CERTIFICATE-----"); convert a DER file with "openssl x509 -inform der -in FILE -out FILE.pem"`,
    );
    expect(problems[1]).toMatch(new RegExp(`^tls\\.caFile "${input.caFile}": certificate #1 cannot be parsed \\(.+\\); replace it with a valid PEM certificate$`));
    expect(problems[2]).toMatch(new RegExp(`^tls\\.keyFile "${input.keyFile}": is not a PEM private key \\(.+\\); point it at the server certificate's private key$`));
  });

  test("fails when the key is encrypted", () => {
    const server = leaf();
    const encrypted = crypto.createPrivateKey(server.keyPem).export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "secret" }).toString();
    const input = files({ cert: server.certPem, key: encrypted, ca: rootCa.certPem });
    expect(problemsOf(() => loadTlsFiles(input, IDENTITY, FIXED_NOW))).toEqual([
      `tls.keyFile "${input.keyFile}": the private key is encrypted; decrypt it with "openssl pkey -in KEY -out KEY.pem" (keep the result 0600)`,
    ]);
  });
});
