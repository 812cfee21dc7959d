import * as crypto from "crypto";
import * as forge from "node-forge";
import { Entropy } from "./entropy";
import { ConfigError } from "../config/config-error";
import { MaterialStore } from "./material-store";
import { normalizeIdentity, ServerIdentity, TlsMaterial } from "./tls-material";

export interface SelfSignedTlsOptions {
  /** Applies when a CA is generated. @default 3650 */
  readonly caValidityDays?: number;
  /** Applies when a server certificate is issued; capped at the CA's expiry. @default 365 */
  readonly serverValidityDays?: number;
  /** Certificates expiring within this many days are re-issued. @default 30 */
  readonly renewBeforeDays?: number;
  /** RSA key size for newly generated keys (existing keys are kept). @default 2048 */
  readonly keyBits?: number;
  /** Applies when a CA is generated; an existing valid CA is kept. @default "registry-stack CA" */
  readonly caCommonName?: string;
}

const FILES = { caKey: "ca.key", caCert: "ca.crt", serverKey: "server.key", serverCert: "server.crt" };
const DAY_MS = 24 * 60 * 60 * 1000;
const CLOCK_SKEW_MS = 5 * 60 * 1000;

interface StoredPair {
  readonly keyPem: string;
  readonly certPem: string;
}

/**
 * A private CA and a server certificate for `identity`, persisted in `store` and reused:
 * a new serial or key on every synth would replace the containers on every deploy.
 *
 * A CA is created only when neither ca.key nor ca.crt exists. Every client trusts it, so any
 * problem with an existing one (one file without the other, unreadable, not a CA, key and
 * certificate not a pair, not yet valid, expiring within `renewBeforeDays`) is an error naming
 * the file: replacing it silently would break every client's certs.d at the next deploy and
 * lose the old key. Rotating the CA is an explicit step (README, "Rotating passwords and certificates").
 *
 * The server certificate (keeping its key) is re-issued automatically when its names differ
 * from `identity`, it expires within `renewBeforeDays`, or it no longer chains to the CA.
 */
export function ensureSelfSignedTls(
  store: MaterialStore,
  identity: ServerIdentity,
  entropy: Entropy,
  options: SelfSignedTlsOptions = {},
): TlsMaterial {
  const caValidityDays = options.caValidityDays ?? 3650;
  const serverValidityDays = options.serverValidityDays ?? 365;
  const renewBeforeDays = options.renewBeforeDays ?? 30;
  const keyBits = options.keyBits ?? 2048;
  const caCommonName = options.caCommonName ?? "registry-stack CA";
  validateOptions(caValidityDays, serverValidityDays, renewBeforeDays);
  const names = normalizeIdentity(identity);

  const now = entropy.now();
  const renewBy = new Date(now.getTime() + renewBeforeDays * DAY_MS);

  let ca = storedCa(store, now, renewBy);
  if (ca === undefined) {
    const keyPem = entropy.generateRsaPrivateKeyPem(keyBits);
    const certPem = issueCa(keyPem, caCommonName, caValidityDays, entropy, now);
    store.write(FILES.caKey, keyPem, 0o600);
    store.write(FILES.caCert, certPem, 0o644);
    ca = { keyPem, certPem };
  }

  let serverKeyPem = store.read(FILES.serverKey);
  if (serverKeyPem === undefined || !isPrivateKey(serverKeyPem)) {
    serverKeyPem = entropy.generateRsaPrivateKeyPem(keyBits);
    store.write(FILES.serverKey, serverKeyPem, 0o600);
  }

  let certificatePem = store.read(FILES.serverCert);
  if (certificatePem === undefined || !serverCertificateIsCurrent(certificatePem, serverKeyPem, ca, names, now, renewBy)) {
    certificatePem = issueServer(serverKeyPem, ca, names, serverValidityDays, entropy, now);
    store.write(FILES.serverCert, certificatePem, 0o644);
  }

  return {
    caCertificatePem: ca.certPem,
    certificatePem,
    privateKeyPem: serverKeyPem,
    certificateChainPem: withNewline(certificatePem) + ca.certPem,
    notAfter: new Date(new crypto.X509Certificate(certificatePem).validTo),
  };
}

function validateOptions(caValidityDays: number, serverValidityDays: number, renewBeforeDays: number): void {
  const problems: string[] = [];
  if (!(renewBeforeDays >= 0)) {
    problems.push(`renewBeforeDays: ${renewBeforeDays} must be zero or positive`);
  }
  // Otherwise every fresh certificate is already "due" and gets re-issued on every synth.
  if (!(serverValidityDays > renewBeforeDays)) {
    problems.push(`serverValidityDays: ${serverValidityDays} must be greater than renewBeforeDays (${renewBeforeDays})`);
  }
  if (!(caValidityDays > renewBeforeDays)) {
    problems.push(`caValidityDays: ${caValidityDays} must be greater than renewBeforeDays (${renewBeforeDays})`);
  }
  if (problems.length > 0) throw new ConfigError(problems, "self-signed TLS options");
}

function storedCa(store: MaterialStore, now: Date, renewBy: Date): StoredPair | undefined {
  const keyPem = store.read(FILES.caKey);
  const certPem = store.read(FILES.caCert);
  if (keyPem === undefined && certPem === undefined) return undefined;

  const keyFile = store.path(FILES.caKey);
  const certFile = store.path(FILES.caCert);
  const restore = `restore ca.key and ca.crt from your backup, or ${ROTATE_CA}`;
  const problems: string[] = [];
  if (keyPem === undefined) problems.push(`${keyFile}: is missing while ${certFile} exists; ${restore}`);
  if (certPem === undefined) problems.push(`${certFile}: is missing while ${keyFile} exists; ${restore}`);

  const key = keyPem === undefined ? undefined : parseOr(() => crypto.createPrivateKey(keyPem), () => problems.push(`${keyFile}: is not a PEM private key; ${restore}`));
  const cert = certPem === undefined ? undefined : parseOr(() => new crypto.X509Certificate(certPem), () => problems.push(`${certFile}: is not a PEM certificate; ${restore}`));
  if (cert !== undefined) {
    if (!cert.ca) problems.push(`${certFile}: is not a CA certificate (basicConstraints CA:FALSE); ${restore}`);
    if (key !== undefined && !cert.checkPrivateKey(key)) problems.push(`${keyFile}: is not the key of ${certFile}; ${restore}`);
    const notBefore = new Date(cert.validFrom);
    const notAfter = new Date(cert.validTo);
    if (notBefore > now) {
      problems.push(`${certFile}: is not valid before ${notBefore.toISOString()}, but the clock says ${now.toISOString()}; fix the system clock (the CA is kept)`);
    } else if (notAfter <= now) {
      problems.push(`${certFile}: expired on ${notAfter.toISOString()}; ${ROTATE_CA}`);
    } else if (notAfter <= renewBy) {
      problems.push(`${certFile}: expires on ${notAfter.toISOString()}, within the renewal window; ${ROTATE_CA}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems, `CA in ${store.directory}`);
  return { keyPem: keyPem as string, certPem: certPem as string };
}

/** What every CA problem tells the user to do when the old CA cannot be restored. */
const ROTATE_CA =
  "rotate the CA: move ca.key and ca.crt out of the material folder (keep them until clients have the new CA), synth again, " +
  "then install the new ca.crt on every client (README.md, \"Rotating passwords and certificates\")";

function parseOr<T>(parse: () => T, onError: () => void): T | undefined {
  try {
    return parse();
  } catch {
    onError();
    return undefined;
  }
}

function serverCertificateIsCurrent(
  certPem: string,
  keyPem: string,
  ca: StoredPair,
  names: ServerIdentity,
  now: Date,
  renewBy: Date,
): boolean {
  try {
    const cert = new crypto.X509Certificate(certPem);
    const caCert = new crypto.X509Certificate(ca.certPem);
    return (
      cert.checkPrivateKey(crypto.createPrivateKey(keyPem)) &&
      cert.checkIssued(caCert) &&
      cert.verify(caCert.publicKey) &&
      new Date(cert.validFrom) <= now &&
      new Date(cert.validTo) > renewBy &&
      sameSet(subjectAltNameKeys(forge.pki.certificateFromPem(certPem)), identityKeys(names))
    );
  } catch {
    return false;
  }
}

function issueCa(keyPem: string, commonName: string, validityDays: number, entropy: Entropy, now: Date): string {
  const key = forge.pki.privateKeyFromPem(keyPem);
  const cert = newCertificate(key, entropy, now, new Date(now.getTime() + validityDays * DAY_MS));
  const subject = [{ name: "commonName", value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(key, forge.md.sha256.create());
  return toPem(cert);
}

function issueServer(
  keyPem: string,
  ca: StoredPair,
  names: ServerIdentity,
  validityDays: number,
  entropy: Entropy,
  now: Date,
): string {
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  // A leaf outliving its CA is useless; the CA's renewal re-issues the leaf anyway.
  const notAfter = new Date(Math.min(now.getTime() + validityDays * DAY_MS, caCert.validity.notAfter.getTime()));
  const cert = newCertificate(forge.pki.privateKeyFromPem(keyPem), entropy, now, notAfter);
  cert.setSubject([{ name: "commonName", value: names.hostnames[0] ?? names.ipAddresses[0] }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    {
      name: "subjectAltName",
      altNames: [
        ...names.hostnames.map((value) => ({ type: 2, value })),
        ...names.ipAddresses.map((ip) => ({ type: 7, ip })),
      ],
    },
    { name: "subjectKeyIdentifier" },
    // forge's `keyIdentifier: true` would use the leaf's own key; it must be the CA's.
    { name: "authorityKeyIdentifier", keyIdentifier: caKeyIdentifier(caCert) },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return toPem(cert);
}

function newCertificate(key: forge.pki.rsa.PrivateKey, entropy: Entropy, now: Date, notAfter: Date): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = serialNumberHex(entropy);
  cert.validity.notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  cert.validity.notAfter = notAfter;
  return cert;
}

function serialNumberHex(entropy: Entropy): string {
  const bytes = entropy.randomBytes(16);
  // High bit cleared keeps the INTEGER positive; bit 6 set keeps it exactly 16 bytes, since
  // forge writes the bytes verbatim and a leading zero byte would be invalid DER.
  bytes[0] = (bytes[0] & 0x7f) | 0x40;
  return bytes.toString("hex");
}

function caKeyIdentifier(caCert: forge.pki.Certificate): string {
  const extension = caCert.getExtension("subjectKeyIdentifier") as { subjectKeyIdentifier?: string } | undefined;
  return extension?.subjectKeyIdentifier !== undefined
    ? forge.util.hexToBytes(extension.subjectKeyIdentifier)
    : caCert.generateSubjectKeyIdentifier().getBytes();
}

function subjectAltNameKeys(cert: forge.pki.Certificate): string[] {
  const extension = cert.getExtension("subjectAltName") as { altNames?: Array<{ type: number; value: string }> } | undefined;
  return (extension?.altNames ?? []).map((name) =>
    name.type === 7 ? `IP:${forge.util.bytesToHex(name.value)}` : `${name.type}:${name.value.toLowerCase()}`,
  );
}

function identityKeys(names: ServerIdentity): string[] {
  return [
    ...names.hostnames.map((host) => `2:${host}`),
    ...names.ipAddresses.map((ip) => `IP:${forge.util.bytesToHex(bytesFromIp(ip))}`),
  ];
}

function bytesFromIp(ip: string): string {
  // Present in node-forge 1.3 but missing from @types/node-forge.
  return (forge.util as unknown as { bytesFromIP(ip: string): string }).bytesFromIP(ip);
}

function sameSet(a: string[], b: string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((item) => right.has(item));
}

function isPrivateKey(pem: string): boolean {
  try {
    return crypto.createPrivateKey(pem).asymmetricKeyType === "rsa";
  } catch {
    return false;
  }
}

function toPem(cert: forge.pki.Certificate): string {
  return forge.pki.certificateToPem(cert).replace(/\r\n/g, "\n");
}

function withNewline(pem: string): string {
  return pem.endsWith("\n") ? pem : `${pem}\n`;
}
