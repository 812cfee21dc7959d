import type { NginxConfInput } from "./nginx-conf";

// TLS of the public servers.

// Mozilla "intermediate" TLS 1.2 suites minus DHE (nginx offers DHE only with ssl_dhparam).
const TLS12_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

export function tlsDirectives(tls: NonNullable<NginxConfInput["tls"]>): string[] {
  return [
    `ssl_certificate ${tls.certificatePath};`,
    `ssl_certificate_key ${tls.keyPath};`,
    "ssl_protocols TLSv1.2 TLSv1.3;",
    `ssl_ciphers ${TLS12_CIPHERS};`,
    "ssl_prefer_server_ciphers off;",
    "ssl_session_cache shared:SSL:10m;",
    "ssl_session_timeout 1d;",
    "ssl_session_tickets off;",
  ];
}
