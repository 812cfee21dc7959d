import * as fs from "fs";
import * as path from "path";
import { NginxProxy } from "../constructs/nginx-proxy";
import { Registry } from "../constructs/registry";
import { DEFAULT_PROXY_TUNING, ProxyTuning, renderNginxConf } from "../renderers/nginx/nginx-conf";
import { BlobFile, downloadBlob, Endpoint, uploadBlob, writeRandomBlob } from "./blobs";
import { httpStatus, Lab, Log, REGISTRY_SOCKET, SERVER_NAME } from "./lab";
import { run } from "./proc";
import { renderRecipeConf } from "./recipe";
import { repeat, medianOf, RepeatResult } from "./reps";
import { Budget } from "./stats";

export const BLOB_BYTES = 512 * 1024 * 1024;
const MIB = 1024 * 1024;
/** Bound of one transfer; a 512 MiB blob takes 1-6 s here. */
const TRANSFER_TIMEOUT_MS = 120_000;
const DOWNLOAD_REPO = "bench/blob";

/** A proxy configuration under test: the stack's renderer with a tuning, or a raw edit of its output. */
export interface ProxyVariant {
  readonly key: string;
  readonly label: string;
  readonly tuning: ProxyTuning;
  readonly tls: boolean;
  /** serveBlobsFromStorage: blob downloads read by nginx from the data volume (mounted read-only). */
  readonly blobReads: boolean;
  /** Only downloads are measured (the upload path is the same as another variant's). */
  readonly downloadOnly?: boolean;
  /** Changes outside ProxyTuning (e.g. sendfile), applied to the rendered nginx.conf. */
  readonly edit?: (conf: string) => string;
  /**
   * Reach the registry over TCP on the backend network instead of its unix socket (how the
   * stack deploys it, and every variant here unless set).
   */
  readonly tcpUpstream?: boolean;
}

export const DEFAULT_VARIANT: ProxyVariant = {
  key: "proxy",
  label: "our proxy, TLS, as deployed (DEFAULT_PROXY_TUNING, blobs served from storage)",
  tuning: DEFAULT_PROXY_TUNING,
  tls: true,
  blobReads: true,
};
export const PLAIN_VARIANT: ProxyVariant = { key: "proxy_plain", label: "our proxy, plain HTTP (context)", tuning: DEFAULT_PROXY_TUNING, tls: false, blobReads: true };
/** The deployed proxy with nginx's own output_buffers (2 32k) for blobs read from storage. */
export const OUTPUT_32K_VARIANT: ProxyVariant = {
  key: "proxy_output_32k",
  label: "our proxy, TLS, blobs from storage with nginx's output_buffers 2 32k (context)",
  tuning: { ...DEFAULT_PROXY_TUNING, blobOutputBuffers: undefined },
  tls: true,
  blobReads: true,
  downloadOnly: true,
};
/** The proxy with every blob download going through the registry (serveBlobsFromStorage: false, and the proxy before #12). */
export const VIA_REGISTRY_VARIANT: ProxyVariant = {
  key: "proxy_via_registry",
  label: "our proxy, TLS, blobs through the registry (serveBlobsFromStorage: false)",
  tuning: DEFAULT_PROXY_TUNING,
  tls: true,
  blobReads: false,
  downloadOnly: true,
};

const t = (changes: Partial<ProxyTuning>): ProxyTuning => ({ ...DEFAULT_PROXY_TUNING, ...changes });

/**
 * TLS 1.3 suites in Go's order (AES-128-GCM first), chosen by the server like Go's crypto/tls
 * does: server preference, except that a client listing ChaCha20 first (no AES hardware) gets it.
 */
export const TLS13_AES128_FIRST = [
  "ssl_prefer_server_ciphers on;",
  "ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;",
  "ssl_conf_command Options PrioritizeChaCha;",
];

/** `--explore=buffers`: proxy buffering and upload pieces; every variant changes one thing against DEFAULT_PROXY_TUNING. */
export const BUFFER_VARIANTS: readonly ProxyVariant[] = [
  DEFAULT_VARIANT,
  { key: "reqbuf_on", label: "proxy_request_buffering on", tuning: t({ requestBuffering: true }), tls: true, blobReads: true },
  { key: "body_16k", label: "client_body_buffer_size 16k (nginx's default; the proxy's before the bench)", tuning: t({ clientBodyBufferSize: "16k" }), tls: true, blobReads: true },
  { key: "body_64k", label: "client_body_buffer_size 64k", tuning: t({ clientBodyBufferSize: "64k" }), tls: true, blobReads: true },
  { key: "body_128k", label: "client_body_buffer_size 128k (the default again: shows the run-to-run spread)", tuning: t({ clientBodyBufferSize: "128k" }), tls: true, blobReads: true },
  { key: "body_1m", label: "client_body_buffer_size 1m", tuning: t({ clientBodyBufferSize: "1m" }), tls: true, blobReads: true },
  { key: "respbuf_off", label: "proxy_buffering off (proxy_buffer_size 64k)", tuning: t({ responseBuffering: false }), tls: true, blobReads: true },
  { key: "respbuf_off_1m", label: "proxy_buffering off, proxy_buffer_size 1m", tuning: t({ responseBuffering: false, proxyBufferSize: "1m" }), tls: true, blobReads: true },
  { key: "buffers_8x1m", label: "proxy_buffer_size 1m, proxy_buffers 8 1m, busy 2m", tuning: t({ proxyBufferSize: "1m", proxyBuffers: "8 1m", proxyBusyBuffersSize: "2m" }), tls: true, blobReads: true },
  { key: "buffers_small", label: "nginx default buffer sizes (4k, 8 4k)", tuning: t({ proxyBufferSize: "4k", proxyBuffers: "8 4k" }), tls: true, blobReads: true },
  { key: "tempfile_1024m", label: "proxy_max_temp_file_size 1024m (nginx default)", tuning: t({ maxTempFileSize: "1024m" }), tls: true, blobReads: true },
  {
    key: "sendfile_off",
    label: "sendfile off (not a ProxyTuning knob)",
    tuning: DEFAULT_PROXY_TUNING,
    tls: true,
    blobReads: true,
    edit: (conf) => replaceOnce(conf, "sendfile on;", "sendfile off;"),
  },
  VIA_REGISTRY_VARIANT,
];

const outputBuffers = (value: string | undefined): ProxyVariant => ({
  key: value === undefined ? "output_nginx_default" : `output_${value.replace(" ", "x")}`,
  label: value === undefined ? "blobOutputBuffers unset: nginx's output_buffers 2 32k" : `blobOutputBuffers ${value}`,
  tuning: t({ blobOutputBuffers: value }),
  tls: true,
  blobReads: true,
  downloadOnly: true,
});

/**
 * `--explore=tls`: what TLS blob downloads from storage depend on — the TLS 1.3 suite the server
 * picks, the pieces nginx reads the file in (blobOutputBuffers), kernel TLS — side by side with
 * the registry terminating TLS itself. Uploads only where the variant changes them (the cipher).
 */
export const TLS_VARIANTS: readonly ProxyVariant[] = [
  DEFAULT_VARIANT,
  {
    key: "tls13_aes128",
    label: "TLS 1.3 suites in Go's order, server's choice (AES-128-GCM first, ChaCha20 for clients that list it first)",
    tuning: DEFAULT_PROXY_TUNING,
    tls: true,
    blobReads: true,
    edit: (conf) => replaceOnce(conf, "ssl_prefer_server_ciphers off;", TLS13_AES128_FIRST.join("\n    ")),
  },
  // Read sizes other than the default's (nginx's own 2 32k when blobOutputBuffers is unset).
  ...[undefined, "2 128k", "2 512k", "1 1m"].filter((v) => v !== DEFAULT_PROXY_TUNING.blobOutputBuffers).map(outputBuffers),
  {
    key: "tcp_upstream",
    label: "the registry reached over TCP on the backend network (the bench's proxies before 2026-11-29; the stack uses its unix socket)",
    tuning: DEFAULT_PROXY_TUNING,
    tls: true,
    blobReads: true,
    tcpUpstream: true,
  },
  {
    key: "ktls",
    label: "kernel TLS asked for (ssl_conf_command Options KTLS; active only where the kernel has TLS)",
    tuning: DEFAULT_PROXY_TUNING,
    tls: true,
    blobReads: true,
    downloadOnly: true,
    edit: (conf) => replaceOnce(conf, "ssl_session_tickets off;", "ssl_session_tickets off;\n    ssl_conf_command Options KTLS;"),
  },
];

function replaceOnce(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`rendered nginx.conf has no "${from}"`);
  return text.replace(from, to);
}

/** nginx.conf for a variant, rendered exactly as constructs/nginx-proxy.ts calls the renderer. */
export function variantConf(v: ProxyVariant, upstreamHost: string): string {
  const conf = renderNginxConf({
    serverNames: [SERVER_NAME],
    listenPort: NginxProxy.LISTEN_PORT,
    healthListenPort: NginxProxy.HEALTH_LISTEN_PORT,
    upstream: v.tcpUpstream ? { host: upstreamHost, port: Registry.PORT } : { socketPath: REGISTRY_SOCKET },
    tls: v.tls ? { certificatePath: NginxProxy.CERTIFICATE_PATH, keyPath: NginxProxy.KEY_PATH } : undefined,
    tuning: v.tuning,
    blobReads: v.blobReads ? { storageRoot: Registry.DATA_PATH } : undefined,
  });
  return v.edit ? v.edit(conf) : conf;
}

/** The random blob of each lab (generated and seeded once, reused by a second measurement). */
const blobs = new Map<string, BlobFile>();

export interface TransferTarget {
  readonly key: string;
  readonly label: string;
  readonly endpoint: Endpoint;
  /** Containers on the path (their CPU time counts as server side, with the port's docker-proxy). */
  readonly serverContainers: string[];
  readonly port: number;
  readonly downloadOnly?: boolean;
}

export interface TransferResult {
  readonly key: string;
  readonly label: string;
  /** Seconds per repetition. */
  readonly uploads: number[];
  readonly downloads: number[];
  readonly uploadMedianS: number;
  readonly downloadMedianS: number;
  readonly uploadMiBps: number;
  readonly downloadMiBps: number;
  /** CPU seconds per transfer (medians): containers + docker-proxy, and the curl client. */
  readonly uploadServerCpuS: number;
  readonly downloadServerCpuS: number;
  readonly uploadClientCpuS: number;
  readonly downloadClientCpuS: number;
}

export interface ProxyBenchResult {
  readonly blobBytes: number;
  /** Repetitions the medians use. */
  readonly repetitions: number;
  readonly reps: RepeatResult;
  readonly results: TransferResult[];
  readonly blob: BlobFile;
  /** Longest `PUT ?digest=` (the registry's commit of the uploaded blob) seen on any path. */
  readonly maxCommitSeconds: number;
}

export interface ProxySetup {
  /** The registry without auth, published on 127.0.0.1, alias "registry" on the backend network. */
  readonly registryName: string;
  readonly directPort: number;
  /** Name and port of the proxy with DEFAULT_PROXY_TUNING and TLS (reused by the auth part). */
  readonly defaultProxyPort: number;
}

/**
 * Starts the registry (no auth, published: "direct") and, per variant, an nginx container in
 * front of it; with `context`, also the registry terminating TLS itself and distribution's
 * recipe. Returns the targets in measuring order.
 */
export async function startTransferTargets(
  lab: Lab,
  variants: readonly ProxyVariant[],
  opts: { registryTls: boolean; recipe: boolean },
): Promise<{ targets: TransferTarget[]; setup: ProxySetup }> {
  const registry = await lab.startRegistry({ name: `rsbench-${lab.id}-registry`, alias: Registry.ALIAS, publish: true });
  const targets: TransferTarget[] = [
    {
      key: "direct",
      label: "registry directly, plain HTTP",
      endpoint: { label: "direct", base: `http://127.0.0.1:${registry.port}` },
      serverContainers: [registry.name],
      port: registry.port!,
    },
  ];
  if (opts.registryTls) {
    const tlsRegistry = await lab.startRegistry({ name: `rsbench-${lab.id}-registry-tls`, alias: "registry-tls", publish: true, tls: true });
    targets.push({
      key: "direct_tls",
      label: "registry terminating TLS itself (proxy: false topology; context)",
      endpoint: { label: "direct_tls", base: `https://${SERVER_NAME}:${tlsRegistry.port}`, caFile: lab.caFile },
      serverContainers: [tlsRegistry.name],
      port: tlsRegistry.port!,
    });
  }
  // The proxies reach the same storage through a second registry on the unix socket, as deployed
  // (a registry listens either on TCP or on a socket; the direct paths need TCP).
  const socketRegistry = variants.some((v) => !v.tcpUpstream)
    ? await lab.startRegistry({ name: `rsbench-${lab.id}-registry-socket`, alias: "registry-socket", socket: true })
    : undefined;
  let defaultProxyPort: number | undefined;
  for (const v of variants) {
    const c = await lab.startNginx({ name: `rsbench-${lab.id}-nginx-${v.key}`, conf: variantConf(v, Registry.ALIAS), tls: v.tls, storage: v.blobReads, socket: !v.tcpUpstream });
    if (v === DEFAULT_VARIANT) defaultProxyPort = c.port;
    const scheme = v.tls ? "https" : "http";
    const base = `${scheme}://${SERVER_NAME}:${c.port}`;
    if (!v.tcpUpstream) await waitRegistryBehind(base, lab.tls.caCertificatePem, v.key);
    targets.push({
      key: v.key,
      label: v.label,
      endpoint: { label: v.key, base, caFile: v.tls ? lab.caFile : undefined },
      serverContainers: [c.name, v.tcpUpstream || !socketRegistry ? registry.name : socketRegistry.name],
      port: c.port!,
      downloadOnly: v.downloadOnly,
    });
  }
  if (opts.recipe) {
    const conf = renderRecipeConf({
      listenPort: NginxProxy.LISTEN_PORT,
      serverName: SERVER_NAME,
      upstream: { host: Registry.ALIAS, port: Registry.PORT },
      certificatePath: NginxProxy.CERTIFICATE_PATH,
      keyPath: NginxProxy.KEY_PATH,
    });
    // The recipe has no health location: any answer on /v2/ means nginx is up.
    const c = await lab.startNginx({ name: `rsbench-${lab.id}-nginx-recipe`, conf, tls: true, probePath: "/v2/" });
    targets.push({
      key: "recipe",
      label: "distribution's nginx recipe, TLS (its default buffering)",
      endpoint: { label: "recipe", base: `https://${SERVER_NAME}:${c.port}`, caFile: lab.caFile },
      serverContainers: [c.name, registry.name],
      port: c.port!,
    });
  }
  if (defaultProxyPort === undefined) throw new Error("the default proxy variant must be among the variants");
  return { targets, setup: { registryName: registry.name, directPort: registry.port!, defaultProxyPort } };
}

/** Waits (bounded) until the registry answers through a proxy: 200 on /v2/ (nginx says 502 while the socket is missing). */
async function waitRegistryBehind(base: string, ca: string, key: string): Promise<void> {
  let last = "";
  for (let i = 0; i < 100; i++) {
    try {
      const status = await httpStatus(`${base}/v2/`, ca);
      if (status === 200) return;
      last = `HTTP ${status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${key}: the registry did not answer through the proxy within 10 s (${last})`);
}

/**
 * Uploads and downloads the blob through every target, interleaved (the order rotates each
 * repetition so no target always runs first), until three repetitions ran undisturbed by
 * other processes on the machine (bounded in count and by the time budget).
 */
export async function measureTransfers(
  lab: Lab,
  targets: readonly TransferTarget[],
  opts: { minClean: number; minReps?: number; maxReps: number; budget: Budget; reserveMs: number; log: Log; uploadsOnly?: boolean },
): Promise<ProxyBenchResult> {
  const file = path.join(lab.workDir, "blob.bin");
  const blob = blobs.get(file) ?? writeRandomBlob(file, BLOB_BYTES);
  const direct = targets.find((x) => x.key === "direct");
  if (!direct) throw new Error("no direct target");
  if (!blobs.has(file)) {
    // Seed the blob for downloads, and warm every path once (TLS sessions, workers, page cache).
    await uploadBlob(direct.endpoint, DOWNLOAD_REPO, blob, TRANSFER_TIMEOUT_MS);
    for (const x of targets) await downloadBlob(x.endpoint, DOWNLOAD_REPO, blob, TRANSFER_TIMEOUT_MS);
    blobs.set(file, blob);
  }

  const up = new Map<string, number[]>(targets.map((x) => [x.key, []]));
  const down = new Map<string, number[]>(targets.map((x) => [x.key, []]));
  const commits: number[] = [];
  const cpu = new Map(targets.map((x) => [x.key, { upServer: [] as number[], upClient: [] as number[], downServer: [] as number[], downClient: [] as number[] }]));
  const reps = await repeat(
    { what: opts.uploadsOnly ? "uploads" : "blob transfers", minClean: opts.minClean, minReps: opts.minReps, maxReps: opts.maxReps, budget: opts.budget, reserveMs: opts.reserveMs, meter: lab.meter, quietWaitMs: 15_000, log: opts.log },
    async (rep) => {
      const order = targets.map((_, i) => targets[(i + rep) % targets.length]);
      for (const x of order) {
        // Every transfer starts with no dirty pages: each upload leaves 0.5-1 GiB to write back
        // (registry, and nginx temp files with request buffering), which would otherwise slow
        // down whichever transfer comes next.
        let server: number;
        let client: number;
        let u = NaN;
        if (!x.downloadOnly) {
          await run("sync", [], { timeoutMs: 60_000 });
          server = lab.serverCpuSeconds(x.serverContainers, x.port);
          client = childrenCpuSeconds();
          const upload = await uploadBlob(x.endpoint, `bench/up-${x.key}`, blob, TRANSFER_TIMEOUT_MS);
          u = upload.seconds;
          cpu.get(x.key)!.upServer.push(lab.serverCpuSeconds(x.serverContainers, x.port) - server);
          cpu.get(x.key)!.upClient.push(childrenCpuSeconds() - client);
          commits.push(upload.commitSeconds);
        } else if (opts.uploadsOnly) continue;
        if (opts.uploadsOnly) {
          up.get(x.key)!.push(u);
          opts.log(`rep ${rep + 1} ${x.key.padEnd(16)} upload ${u.toFixed(2)} s`);
          continue;
        }
        await run("sync", [], { timeoutMs: 60_000 });
        server = lab.serverCpuSeconds(x.serverContainers, x.port);
        client = childrenCpuSeconds();
        const d = await downloadBlob(x.endpoint, DOWNLOAD_REPO, blob, TRANSFER_TIMEOUT_MS);
        cpu.get(x.key)!.downServer.push(lab.serverCpuSeconds(x.serverContainers, x.port) - server);
        cpu.get(x.key)!.downClient.push(childrenCpuSeconds() - client);
        if (!x.downloadOnly) up.get(x.key)!.push(u);
        down.get(x.key)!.push(d);
        opts.log(`rep ${rep + 1} ${x.key.padEnd(16)} upload ${x.downloadOnly ? "–" : `${u.toFixed(2)} s`}  download ${d.toFixed(2)} s`);
      }
    },
  );
  const results = targets.map((x): TransferResult => {
    const uploads = up.get(x.key)!;
    const downloads = down.get(x.key)!;
    const uploadMedianS = medianOf(uploads, reps.used);
    const downloadMedianS = medianOf(downloads, reps.used);
    const c = cpu.get(x.key)!;
    return {
      key: x.key,
      label: x.label,
      uploads,
      downloads,
      uploadMedianS,
      downloadMedianS,
      uploadMiBps: BLOB_BYTES / MIB / uploadMedianS,
      downloadMiBps: BLOB_BYTES / MIB / downloadMedianS,
      uploadServerCpuS: medianOf(c.upServer, reps.used),
      downloadServerCpuS: medianOf(c.downServer, reps.used),
      uploadClientCpuS: medianOf(c.upClient, reps.used),
      downloadClientCpuS: medianOf(c.downClient, reps.used),
    };
  });
  return { blobBytes: BLOB_BYTES, repetitions: reps.used.length, reps, results, blob, maxCommitSeconds: Math.max(...commits) };
}

/** The TLS 1.3 suites in the order Go's crypto/tls client offers them on AES hardware (docker, containerd, skopeo). */
const GO_CLIENT_TLS13_ORDER = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/** Protocol and cipher suite one TLS path negotiated, with the bench's client and with a client offering Go's order. */
export interface NegotiatedTls {
  /** curl as the transfers run it (OpenSSL's default offer: AES-256-GCM first), e.g. "TLSv1.3 / TLS_AES_256_GCM_SHA384". */
  readonly benchClient: string;
  /** openssl s_client offering TLS 1.3 suites in Go's client order (AES-128-GCM first). */
  readonly goOrderClient: string;
}

/** Asks every TLS target which suite it picks; read from the clients' own reports of the handshake. */
export async function negotiatedTls(targets: readonly TransferTarget[]): Promise<Record<string, NegotiatedTls>> {
  const out: Record<string, NegotiatedTls> = {};
  for (const x of targets) {
    const base = new URL(x.endpoint.base);
    if (base.protocol !== "https:") continue;
    // A failed probe is reported as such; it does not stop the measurements.
    const output = (command: string, args: string[]) =>
      run(command, args, { timeoutMs: 15_000, input: "" }).then(
        (r) => r.stdout + r.stderr,
        (err: Error) => err.message,
      );
    const curlText = await output("curl", ["-sv", "--http1.1", "--cacert", x.endpoint.caFile ?? "", "-o", "/dev/null", "-m", "10", `${x.endpoint.base}/v2/`]);
    const used = /SSL connection using (\S+) \/ (\S+)/.exec(curlText);
    const text = await output("openssl", ["s_client", "-connect", base.host, "-CAfile", x.endpoint.caFile ?? "", "-ciphersuites", GO_CLIENT_TLS13_ORDER, "-brief"]);
    const protocol = /Protocol version: (\S+)/.exec(text)?.[1];
    const suite = /Ciphersuite: (\S+)/.exec(text)?.[1];
    out[x.key] = {
      benchClient: used ? `${used[1]} / ${used[2]}` : "unknown (curl did not report it)",
      goOrderClient: protocol && suite ? `${protocol} / ${suite}` : "unknown (openssl s_client did not report it)",
    };
  }
  return out;
}

/** CPU seconds of this process's finished (waited-for) children: the curl processes of a transfer. */
function childrenCpuSeconds(): number {
  const stat = fs.readFileSync("/proc/self/stat", "utf8");
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // cutime and cstime are fields 16 and 17.
  return (Number(rest[13]) + Number(rest[14])) / 100;
}
