import * as net from "net";
import { MaterialError } from "./material-error";

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

const DNS_NAME = /^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * Lower-cases and de-duplicates host names and writes IP addresses in canonical form
 * (so "::0:1" and "::1" compare equal). Throws MaterialError listing every invalid entry.
 */
export function normalizeIdentity(identity: ServerIdentity): ServerIdentity {
  const problems: string[] = [];
  const hostnames = identity.hostnames.map((raw, i) => {
    const name = raw.toLowerCase();
    if (!DNS_NAME.test(name) || name.length > 253) {
      problems.push(`hostnames[${i}]: "${raw}" is not a valid DNS name; use letters, digits, hyphens and dots`);
    }
    return name;
  });
  const ipAddresses = identity.ipAddresses.map((raw, i) => {
    const canonical = canonicalIp(raw);
    if (canonical === undefined) {
      problems.push(`ipAddresses[${i}]: "${raw}" is not an IPv4 or IPv6 address (without zone id); fix or remove it`);
    }
    return canonical ?? raw;
  });
  if (hostnames.length === 0 && ipAddresses.length === 0) {
    problems.push("hostnames/ipAddresses: both are empty; give at least one name clients use to reach the registry");
  }
  if (problems.length > 0) throw new MaterialError(problems);
  return { hostnames: [...new Set(hostnames)], ipAddresses: [...new Set(ipAddresses)] };
}

function canonicalIp(ip: string): string | undefined {
  if (net.isIPv4(ip)) return ip;
  if (!net.isIPv6(ip) || ip.includes("%")) return undefined;
  // The WHATWG URL parser prints IPv6 in the RFC 5952 form (also for "::ffff:1.2.3.4").
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}
