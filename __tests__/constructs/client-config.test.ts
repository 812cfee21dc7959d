import "cdktf/lib/testing/adapters/jest";
import { File } from "@cdktf/provider-local/lib/file";
import { Testing } from "cdktf";
import * as fs from "fs";
import * as path from "path";
import { ClientConfig, registryEndpoints } from "../../constructs/client-config";
import { tempDirectory } from "../fixtures/test-stack";

describe("registryEndpoints", () => {
  test("lists host:port for every name and address, IPv6 in brackets", () => {
    expect(registryEndpoints(["store.example.test"], ["192.0.2.10", "2001:db8::1"], 5000)).toEqual([
      "store.example.test:5000",
      "192.0.2.10:5000",
      "[2001:db8::1]:5000",
    ]);
  });

  test("adds the bare host on 443, which docker uses when the port is omitted", () => {
    expect(registryEndpoints(["store.example.test"], [], 443)).toEqual(["store.example.test", "store.example.test:443"]);
  });
});

describe("ClientConfig", () => {
  test("writes one ca.crt per endpoint and a merged daemon.json", () => {
    const directory = tempDirectory();
    fs.writeFileSync(path.join(directory, "daemon.json"), '{"data-root": "/srv/docker", "insecure-registries": ["store.example.test:5000"]}');
    const stack = Testing.synthScope((scope) => {
      new ClientConfig(scope, "client", { endpoints: ["store.example.test:5000"], caCertificatePem: "PEM", directory });
    });
    expect(stack).toHaveResourceWithProperties(File, { filename: path.join(directory, "certs.d/store.example.test:5000/ca.crt"), content: "PEM" });
    // Switching to TLS removes our endpoint from insecure-registries and keeps the rest.
    expect(stack).toHaveResourceWithProperties(File, {
      filename: path.join(directory, "daemon.json"),
      content: JSON.stringify({ "data-root": "/srv/docker", "insecure-registries": [] }, null, 2) + "\n",
    });
  });

  test("writes nothing to disk at synth", () => {
    const directory = path.join(tempDirectory(), "client");
    Testing.synthScope((scope) => {
      new ClientConfig(scope, "client", { endpoints: ["localhost:5000"], directory });
    });
    expect(fs.existsSync(directory)).toBe(false);
  });
});
