import { block } from "./block";

// Health: /healthz on every server and a loopback server that also names the generation.

/** Where the health server answers the configuration's generation (see NginxConfInput.generation). */
export const GENERATION_PATH = "/registry-stack/generation";

// `return` runs before any auth phase, so this location stays anonymous whatever auth is added.
export function healthLocation(): string[] {
  return block("location = /healthz", ["access_log off;", "default_type text/plain;", 'return 200 "ok\\n";']);
}

export function healthServer(listenPort: number, generation: string | undefined): string[] {
  const generationLocation = generation !== undefined ? ["", ...block(`location = ${GENERATION_PATH}`, ["access_log off;", "default_type text/plain;", `return 200 "${generation}";`])] : [];
  return block("server", [`listen 127.0.0.1:${listenPort};`, "", healthLocation(), ...generationLocation, "", fallbackLocation()]);
}

export function fallbackLocation(): string[] {
  return block("location /", ["return 404;"]);
}
