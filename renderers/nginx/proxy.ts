import { block, onOff } from "./block";
import { challengeDirectives } from "./ui";

// The core of every server: the main context, upstreams and how a location proxies to the registry.

/** Proxy knobs a benchmark tunes; every value is written as given. */
export interface ProxyTuning {
  /** `proxy_request_buffering`: off streams uploads to the registry as they arrive. */
  readonly requestBuffering: boolean;
  /** `proxy_buffering`. */
  readonly responseBuffering: boolean;
  /** `proxy_buffer_size`, e.g. "64k". */
  readonly proxyBufferSize: string;
  /** `proxy_buffers`, "<number> <size>", e.g. "16 256k". */
  readonly proxyBuffers: string;
  /** `proxy_max_temp_file_size`; "0" keeps responses off the disk. */
  readonly maxTempFileSize: string;
  readonly readTimeoutSeconds: number;
  readonly sendTimeoutSeconds: number;
  /**
   * `proxy_busy_buffers_size`; nginx refuses to start unless it is below the total of
   * proxy_buffers minus one buffer, so set it when proxy_buffers has few large buffers.
   * @default - nginx's default, twice the larger of proxy_buffer_size and one proxy_buffers size
   */
  readonly proxyBusyBuffersSize?: string;
  /**
   * `client_body_buffer_size`; with request buffering off it is the piece size of uploads.
   * @default - nginx's default (16k on 64-bit)
   */
  readonly clientBodyBufferSize?: string;
  /**
   * `output_buffers` of blobs read from storage (serveBlobsFromStorage): the pieces nginx reads the
   * file in before encrypting it (no sendfile through TLS without kernel TLS).
   * @default - nginx's default, 2 32k
   */
  readonly blobOutputBuffers?: string;
  /**
   * `keepalive` of the upstream: idle connections to the registry kept per worker.
   * @default 32
   */
  readonly upstreamKeepalive?: number;
}

/**
 * Chosen by measurement (paired runs of tuning variants on these machines): uploads
 * stream to the registry in 128k pieces (nginx's 16k default was a few per cent slower on a
 * 512 MiB layer); downloads are buffered in memory only (no temp files; other buffer sizes and
 * unbuffered responses were not faster, nginx's 4k/8×4k defaults were slower). Blobs read from
 * storage in 2 × 128k pieces: 2 × 512k was not consistently faster (paired 1.04× and 0.95×
 * against it in two runs, where the same configuration twice differs by 1–2 %), nginx's own
 * 2 × 32k was slower (0.85×–0.99×); 256 KiB per download in flight instead of 1 MiB.
 */
export const DEFAULT_PROXY_TUNING: ProxyTuning = {
  requestBuffering: false,
  responseBuffering: true,
  proxyBufferSize: "64k",
  proxyBuffers: "16 256k",
  maxTempFileSize: "0",
  readTimeoutSeconds: 900,
  sendTimeoutSeconds: 900,
  clientBodyBufferSize: "128k",
  blobOutputBuffers: "2 128k",
};

/**
 * A TCP address, a unix socket (`unix:` in nginx) in a volume shared with the registry, or a
 * Docker service name that Docker's DNS answers with one address per replica (`dnsrr`), looked up
 * again every DOCKER_DNS_VALID_SECONDS (an `upstream` block resolves its names once, at start).
 */
export type UpstreamAddress =
  | { readonly host: string; readonly port: number }
  | { readonly socketPath: string }
  | { readonly serviceName: string; readonly port: number };

/** Docker's embedded DNS server, in every container on a user-defined network. */
export const DOCKER_DNS_RESOLVER = "127.0.0.11";

/** How long nginx trusts an answer: a replica that is gone is not asked for longer than this. */
export const DOCKER_DNS_VALID_SECONDS = 5;

/** Where nginx's JavaScript module is, in the official nginx images and in Debian's libnginx-mod-http-js. */
export const NJS_MODULE_PATH = "/usr/lib/nginx/modules/ngx_http_js_module.so";

export const UPSTREAM_NAME = "docker-registry";

export const REFUSAL_HEADER = "X-Registry-Stack-Refusal";

export const DEFAULT_UPSTREAM_KEEPALIVE = 32;

export const ACCESS_LOG_FORMAT = "registry_stack";

// From distribution's nginx recipe: docker 1.3–1.5 clients speak a broken v2 protocol.
export const ANCIENT_DOCKER_USER_AGENT = String.raw`"^(docker\/1\.(3|4|5(?!\.[0-9]-dev))|Go ).*$"`;

// No `user` directive: the Debian package and the official image compile in an unprivileged
// default for workers, and the directive warns when the master is not root.
export function mainContext(withNjs: boolean): string[] {
  // Loaded by path: the stack's nginx.conf replaces the image's, which includes module snippets.
  const modules = withNjs ? [`load_module ${NJS_MODULE_PATH};`] : [];
  return [...modules, "worker_processes auto;", "pid /tmp/nginx.pid;", "error_log stderr warn;"];
}

export function eventsBlock(): string[] {
  return block("events", ["worker_connections 1024;"]);
}

/** One address, or the instances of one service (nginx balances and retries over them). */
export type UpstreamServers = UpstreamAddress | readonly UpstreamAddress[];

export function serverList(upstream: UpstreamServers): readonly UpstreamAddress[] {
  return Array.isArray(upstream) ? upstream : [upstream as UpstreamAddress];
}

/** A Swarm service's name, resolved per request through Docker's DNS (its replicas come and go). */
function serviceAddress(upstream: UpstreamServers): Extract<UpstreamAddress, { serviceName: string }> | undefined {
  const service = serverList(upstream).find((u): u is Extract<UpstreamAddress, { serviceName: string }> => "serviceName" in u);
  if (service !== undefined && serverList(upstream).length > 1) throw new Error("a service name stands for all its replicas: list it alone");
  return service;
}

/** What `proxy_pass http://…` names: the upstream block, or the variable holding a service's name and port. */
export function upstreamReference(name: string, upstream: UpstreamServers): string {
  return serviceAddress(upstream) !== undefined ? `$${name.replace(/-/g, "_")}_address` : name;
}

export function usesServiceDns(upstreams: readonly UpstreamServers[]): boolean {
  return upstreams.some((u) => serviceAddress(u) !== undefined);
}

export function upstreamBlock(name: string, upstream: UpstreamServers, keepalive: number): string[] {
  // A variable in proxy_pass makes nginx resolve the name per request (through `resolver`); the
  // map only defines that variable at http level (its source is irrelevant: there is only a default).
  // No keepalive: connections to names resolved this way are not pooled.
  const service = serviceAddress(upstream);
  if (service !== undefined) return block(`map $host ${upstreamReference(name, upstream)}`, [`default ${service.serviceName}:${service.port};`]);
  const servers = serverList(upstream).map((u) => ("socketPath" in u ? `unix:${u.socketPath}` : "host" in u ? `${u.host}:${u.port}` : `${u.serviceName}:${u.port}`));
  if (servers.length === 0) throw new Error(`upstream ${name}: no server`);
  return block(`upstream ${name}`, [...servers.map((s) => `server ${s};`), `keepalive ${keepalive};`]);
}

/**
 * Where a service runs as several instances: a request that finds its instance gone (connection
 * refused or reset before the answer's header, a 502/503) goes to the next one. nginx never
 * passes on a POST or PATCH once sent (no `non_idempotent`), nor a request whose body it was
 * still streaming (proxy_request_buffering off): a GET or HEAD, or a PUT whose whole body it had
 * read, is sent again, to the same URL, so an upload continues in its own session on the other
 * instance (same storage and http.secret).
 */
export function upstreamRetryDirectives(instances: number): string[] {
  return ["proxy_next_upstream error timeout http_502 http_503;", `proxy_next_upstream_tries ${instances};`];
}

/**
 * Where a location proxies to. `decided`: the access decision's upstream variable, with the raw
 * request target (exactly what the decision read) and the refusal reason for the refusal server.
 */
export interface ProxyTarget {
  readonly upstream: string;
  readonly decided: boolean;
}

export function proxyDirectives(tuning: ProxyTuning, to: ProxyTarget, withAuthCache: boolean, withUi: boolean): string[] {
  const lines = [
    ...(to.decided ? [`proxy_pass http://${to.upstream}$request_uri;`, `proxy_set_header ${REFUSAL_HEADER} $registry_refusal;`] : [`proxy_pass http://${to.upstream};`]),
    // HTTP/1.1 with an empty Connection header keeps upstream connections alive, and without
    // it nginx buffers chunked uploads whatever proxy_request_buffering says.
    "proxy_http_version 1.1;",
    'proxy_set_header Connection "";',
    // $http_host keeps the client's port, which the registry puts into Location headers.
    "proxy_set_header Host $http_host;",
    "proxy_set_header X-Real-IP $remote_addr;",
    "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "proxy_set_header X-Forwarded-Proto $scheme;",
    `proxy_read_timeout ${tuning.readTimeoutSeconds}s;`,
    `proxy_send_timeout ${tuning.sendTimeoutSeconds}s;`,
    `proxy_request_buffering ${onOff(tuning.requestBuffering)};`,
    `proxy_buffering ${onOff(tuning.responseBuffering)};`,
    `proxy_buffer_size ${tuning.proxyBufferSize};`,
    `proxy_buffers ${tuning.proxyBuffers};`,
  ];
  if (tuning.proxyBusyBuffersSize !== undefined) {
    lines.push(`proxy_busy_buffers_size ${tuning.proxyBusyBuffersSize};`);
  }
  lines.push(
    `proxy_max_temp_file_size ${tuning.maxTempFileSize};`,
    "",
    "add_header 'Docker-Distribution-Api-Version' $docker_distribution_api_version always;",
  );
  // With the auth cache the data registry runs without auth and sends no challenge itself.
  if (withUi && !withAuthCache) lines.push(...challengeDirectives());
  return lines;
}
