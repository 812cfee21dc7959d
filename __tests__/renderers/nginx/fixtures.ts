import { DEFAULT_PROXY_TUNING, NginxConfInput, renderNginxConf } from "../../../renderers/nginx/nginx-conf";
import { Directive, all, blockOf, parseNginxConf } from "../nginx-conf-parser";


export const TLS = { certificatePath: "/etc/nginx/tls/server.crt", keyPath: "/etc/nginx/tls/server.key" };
/** nginx checks the logins itself, asking the verifier on its socket (the default topology). */
export const AUTH_CACHE = { verifier: { socketPath: "/run/registry-stack/auth.sock" }, cacheSeconds: 60, realm: "Registry", verificationsPerMinute: 30, totalVerificationsPerMinute: 240, limiterListenPort: 8082 };

/** The private registry on its socket with nginx checking the logins (the default topology). */
export const WITH_AUTH_CACHE: NginxConfInput = {
  serverNames: ["store.example.test"],
  listenPort: 8443,
  upstream: { socketPath: "/run/registry-stack/registry.sock" },
  tls: { certificatePath: "/c.crt", keyPath: "/c.key" },
  authCache: AUTH_CACHE,
  tuning: DEFAULT_PROXY_TUNING,
};

export function input(overrides: Partial<NginxConfInput> = {}): NginxConfInput {
  return {
    serverNames: ["registry.example.test", "localhost"],
    listenPort: 8443,
    upstream: { host: "registry", port: 5000 },
    tls: TLS,
    tuning: DEFAULT_PROXY_TUNING,
    ...overrides,
  };
}

export function render(overrides: Partial<NginxConfInput> = {}) {
  const text = renderNginxConf(input(overrides));
  const main = parseNginxConf(text);
  const http = blockOf(main, "http");
  const servers = all(http, "server").filter((d) => d.block);
  const proxy = servers[0].block!;
  const v2 = blockOf(proxy, "location", "/v2/");
  return { text, main, http, servers, proxy, v2 };
}

export function headers(location: Directive[]): Record<string, string> {
  return Object.fromEntries(all(location, "proxy_set_header").map((d) => [d.args[0], d.args.slice(1).join(" ")]));
}

// Directives of nginx core, http core, log, upstream, map, rewrite, proxy, headers and ssl:
// all present in the official alpine image and in Debian bookworm's nginx/nginx-light.
export const PORTABLE_DIRECTIVES = new Set([
  "worker_processes", "pid", "error_log", "events", "worker_connections", "http", "server_tokens",
  "default_type", "access_log", "sendfile", "tcp_nopush", "keepalive_timeout", "client_body_temp_path",
  "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path", "map", "upstream", "server",
  "keepalive", "listen", "server_name", "ssl_certificate", "ssl_certificate_key", "ssl_protocols", "ssl_ciphers",
  "ssl_prefer_server_ciphers", "ssl_session_cache", "ssl_session_timeout", "ssl_session_tickets",
  "client_max_body_size", "chunked_transfer_encoding", "client_body_buffer_size", "location", "if", "return",
  "proxy_pass", "proxy_http_version", "proxy_set_header", "proxy_read_timeout", "proxy_send_timeout",
  "proxy_request_buffering", "proxy_buffering", "proxy_buffer_size", "proxy_buffers", "proxy_busy_buffers_size",
  "proxy_max_temp_file_size", "proxy_next_upstream", "proxy_next_upstream_tries", "add_header", "log_format", "set", "root", "try_files", "types", "etag", "output_buffers",
]);

export function stripMapEntries(d: Directive): Directive {
  if (d.name === "map") return { ...d, block: [] };
  return d.block ? { ...d, block: d.block.map(stripMapEntries) } : d;
}
