import * as crypto from "crypto";
import * as fs from "fs";
import { ConfigError } from "../config/config-error";
import { normalizeIdentity, ServerIdentity, TlsMaterial } from "./tls-material";

/** Operator-supplied PEM files. Relative paths resolve against the working directory. */
export interface TlsFiles {
  /** The server certificate, optionally followed by intermediate certificates. */
  readonly certificateFile: string;
  /** The server certificate's private key, unencrypted. */
  readonly keyFile: string;
  /** The CA (or CAs) that clients trust and that issued the chain. */
  readonly caFile: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * Reads and checks operator-supplied TLS files: a mistake here would otherwise surface
 * only as a failed `docker login` after deploy. Throws one ConfigError listing every
 * problem found.
 */
export function loadTlsFiles(files: TlsFiles, identity: ServerIdentity, now: Date): TlsMaterial {
  const problems: string[] = [];
  const certField = `tls.certificateFile "${files.certificateFile}"`;
  const keyField = `tls.keyFile "${files.keyFile}"`;
  const caField = `tls.caFile "${files.caFile}"`;

  const certText = readText(certField, files.certificateFile, "the PEM server certificate", problems);
  const keyText = readText(keyField, files.keyFile, "the server certificate's PEM private key", problems);
  const caText = readText(caField, files.caFile, "the PEM certificate of the CA that issued the server certificate", problems);

  const chain = certText === undefined ? [] : parseCertificates(certField, certText, problems);
  const anchors = caText === undefined ? [] : parseCertificates(caField, caText, problems);
  const key = keyText === undefined ? undefined : parsePrivateKey(keyField, keyText, problems);
  const leaf = chain[0];

  if (leaf !== undefined && key !== undefined && !leaf.checkPrivateKey(key)) {
    problems.push(`${keyField}: the key does not belong to the certificate in ${certField}; use the private key the certificate was issued for`);
  }
  if (leaf !== undefined) {
    problems.push(...uncoveredNames(certField, leaf, identity));
    problems.push(...validityProblems(certField, leaf, now));
  }

  let path: crypto.X509Certificate[] = [];
  if (leaf !== undefined && anchors.length > 0) {
    const found = findPath(leaf, chain.slice(1), anchors);
    if (found === undefined) {
      problems.push(
        `${caField}: does not verify the certificate in ${certField} (issuer "${oneLine(leaf.issuer)}"); ` +
          "use the CA that signed it, or append the missing intermediate certificates to tls.certificateFile",
      );
    } else {
      path = found;
      for (const issuer of path.slice(1)) {
        const field = anchors.includes(issuer) ? caField : certField;
        problems.push(...validityProblems(`${field} (certificate "${oneLine(issuer.subject)}")`, issuer, now));
      }
    }
  }

  if (problems.length > 0) throw new ConfigError(problems, "TLS files");
  return {
    caCertificatePem: withNewline(caText as string),
    certificatePem: leaf.toString(),
    privateKeyPem: withNewline(keyText as string),
    certificateChainPem: path.map((cert) => cert.toString()).join(""),
    notAfter: new Date(leaf.validTo),
  };
}

function readText(field: string, file: string, expected: string, problems: string[]): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    problems.push(
      code === "ENOENT"
        ? `${field}: the file does not exist; point it at ${expected}`
        : `${field}: the file cannot be read (${code ?? (error as Error).message}); fix its path or permissions`,
    );
    return undefined;
  }
}

function parseCertificates(field: string, text: string, problems: string[]): crypto.X509Certificate[] {
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    problems.push(
      `${field}: contains no PEM certificate ("-----BEGIN CERTIFICATE-----"); ` +
        'convert a DER file with "openssl x509 -inform der -in FILE -out FILE.pem"',
    );
  }
  const certificates: crypto.X509Certificate[] = [];
  blocks.forEach((block, index) => {
    try {
      certificates.push(new crypto.X509Certificate(block));
    } catch (error) {
      problems.push(`${field}: certificate #${index + 1} cannot be parsed (${(error as Error).message}); replace it with a valid PEM certificate`);
    }
  });
  return certificates;
}

function parsePrivateKey(field: string, text: string, problems: string[]): crypto.KeyObject | undefined {
  if (/-----BEGIN [A-Z ]*ENCRYPTED|Proc-Type: 4,ENCRYPTED/.test(text)) {
    problems.push(`${field}: the private key is encrypted; decrypt it with "openssl pkey -in KEY -out KEY.pem" (keep the result 0600)`);
    return undefined;
  }
  try {
    return crypto.createPrivateKey(text);
  } catch (error) {
    problems.push(`${field}: is not a PEM private key (${(error as Error).message}); point it at the server certificate's private key`);
    return undefined;
  }
}

function uncoveredNames(field: string, leaf: crypto.X509Certificate, identity: ServerIdentity): string[] {
  const names = normalizeIdentity(identity);
  const certified = leaf.subjectAltName ?? "none";
  const fix = `(certificate names: ${certified}); re-issue the certificate with it in subjectAltName, or stop using that name`;
  return [
    // Go clients (docker, the registry) ignore the subject CN, so only SANs count.
    ...names.hostnames.filter((host) => leaf.checkHost(host, { subject: "never" }) === undefined).map((host) => `${field}: does not cover host name "${host}" ${fix}`),
    ...names.ipAddresses.filter((ip) => leaf.checkIP(ip) === undefined).map((ip) => `${field}: does not cover IP address "${ip}" ${fix}`),
  ];
}

function validityProblems(field: string, cert: crypto.X509Certificate, now: Date): string[] {
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (now < notBefore) return [`${field}: is not valid before ${notBefore.toISOString()}; check the clock or use a certificate valid now`];
  if (now > notAfter) return [`${field}: expired on ${notAfter.toISOString()}; renew the certificate`];
  return [];
}

/** Leaf, intermediates (from the certificate file) and the CA that anchors them, or undefined. */
function findPath(
  leaf: crypto.X509Certificate,
  intermediates: crypto.X509Certificate[],
  anchors: crypto.X509Certificate[],
): crypto.X509Certificate[] | undefined {
  const path = [leaf];
  const unused = [...intermediates];
  for (let current = leaf; ; ) {
    const anchor = anchors.find((candidate) => issued(current, candidate));
    if (anchor !== undefined) {
      return anchor.fingerprint256 === current.fingerprint256 ? path : [...path, anchor];
    }
    const next = unused.findIndex((candidate) => issued(current, candidate));
    if (next < 0) return undefined;
    current = unused.splice(next, 1)[0];
    path.push(current);
  }
}

function issued(child: crypto.X509Certificate, issuer: crypto.X509Certificate): boolean {
  return child.checkIssued(issuer) && child.verify(issuer.publicKey);
}

function oneLine(distinguishedName: string): string {
  return distinguishedName.split("\n").join(", ");
}

function withNewline(text: string): string {
  return text.endsWith("\n") ? text : `${text}\n`;
}
