import { block, hostForUrl } from "./block";

// The plain-HTTP port that redirects to HTTPS.

// Redirect targets come from the configuration, never from the client's Host header alone:
// $host is used only in the server whose server_name matched it.
export function redirectServers(serverNames: string[], listenPort: number, publicPort: number): string[][] {
  const port = publicPort === 443 ? "" : `:${publicPort}`;
  return [
    block("server", [`listen ${listenPort};`, `server_name ${serverNames.join(" ")};`, `return 301 https://$host${port}$request_uri;`]),
    block("server", [`listen ${listenPort} default_server;`, "server_name _;", `return 301 https://${hostForUrl(serverNames[0])}${port}$request_uri;`]),
  ];
}
