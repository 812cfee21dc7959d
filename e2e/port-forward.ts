import * as net from "net";

/**
 * TCP forwarders from `address:port` to `127.0.0.1:port`, in this process: a client that must
 * reach the stack by a non-loopback address (dockerd trusts TLS only there) gets one on a
 * docker network of the suite's engine. Bytes pass unchanged (TLS end to end).
 */
export interface PortForwarder {
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

export async function forwardPorts(address: string, ports: readonly number[]): Promise<PortForwarder> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const servers = await Promise.all(
    ports.map(
      (port) =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer((client) => {
            accepted++;
            const target = net.connect(port, "127.0.0.1");
            for (const s of [client, target]) {
              sockets.add(s);
              s.on("close", () => sockets.delete(s));
              s.on("error", () => (s === client ? target : client).destroy());
            }
            client.pipe(target).pipe(client);
          });
          server.once("error", reject);
          server.listen(port, address, () => resolve(server));
        }),
    ),
  );
  return {
    connections: () => accepted,
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    },
  };
}
