import * as net from "net";

/** The names clients use to reach the registry; every one must be in the certificate. */
export interface ServerIdentity {
  readonly hostnames: string[];
  readonly ipAddresses: string[];
}

/** Certificates and key for the TLS endpoint, all PEM. */
export interface TlsMaterial {
  /** The CA clients must trust (e.g. /etc/docker/certs.d/<host:port>/ca.crt). */
  readonly caCertificatePem: string;
  /** The server (leaf) certificate only. */
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  /** Leaf followed by its issuers, for nginx `ssl_certificate`. */
  readonly certificateChainPem: string;
  /** When the server certificate expires. */
  readonly notAfter: Date;
}

/**
 * Lower-cases and de-duplicates host names and writes IP addresses in canonical form (so
 * "::0:1" and "::1" compare equal). The names were validated by the config schema
 * (config/rules.ts), the one place for those rules.
 */
export function normalizeIdentity(identity: ServerIdentity): ServerIdentity {
  return {
    hostnames: [...new Set(identity.hostnames.map((name) => name.toLowerCase()))],
    ipAddresses: [...new Set(identity.ipAddresses.map((ip) => canonicalIp(ip) ?? ip))],
  };
}

function canonicalIp(ip: string): string | undefined {
  if (net.isIPv4(ip)) return ip;
  if (!net.isIPv6(ip) || ip.includes("%")) return undefined;
  // The WHATWG URL parser prints IPv6 in the RFC 5952 form (also for "::ffff:1.2.3.4").
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}
