
// nginx syntax shared by every feature: blocks, on/off, the registry's JSON errors.

/** An nginx block: `header {`, the body indented, `}`. Nested blocks are line arrays too. */
export function block(header: string, body: ReadonlyArray<string | string[]>): string[] {
  const lines = body.flatMap((item) => (typeof item === "string" ? [item] : item));
  return [`${header} {`, ...lines.map((line) => (line === "" ? "" : `  ${line}`)), "}"];
}

export function onOff(value: boolean): string {
  return value ? "on" : "off";
}

// docker turns an error whose message is the code's default and whose detail is null into a bare
// code ("denied"), which its push does not recognise as final and retries five times (~50 s):
// refusals carry a detail, so docker stops at once and prints "<code>: <message>".
export function registryError(code: string, message: string, detail: string | null = null): string {
  if (`${message}${detail ?? ""}`.includes("'")) throw new Error("registry error texts go into single-quoted nginx strings: no apostrophes");
  return `${JSON.stringify({ errors: [{ code, message, detail }] })}\n`;
}

// A login-check subrequest would otherwise carry the client's method (PUT, PATCH) and body.
export const BODYLESS_GET_SUBREQUEST = [
  "proxy_method GET;",
  "proxy_pass_request_body off;",
  'proxy_set_header Content-Length "";',
  "proxy_http_version 1.1;",
  'proxy_set_header Connection "";',
  "proxy_set_header Host $http_host;",
];

export function hostForUrl(name: string): string {
  return name.includes(":") ? `[${name}]` : name;
}
