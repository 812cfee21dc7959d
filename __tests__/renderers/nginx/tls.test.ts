import { flatten, value } from "../nginx-conf-parser";
import { TLS, render } from "./fixtures";

describe("renderNginxConf", () => {
  describe("TLS", () => {
    test("terminates TLS 1.2/1.3 with the given certificate", () => {
      const { proxy } = render();
      expect(value(proxy, "listen")).toBe("8443 ssl");
      expect(value(proxy, "ssl_certificate")).toBe(TLS.certificatePath);
      expect(value(proxy, "ssl_certificate_key")).toBe(TLS.keyPath);
      expect(value(proxy, "ssl_protocols")).toBe("TLSv1.2 TLSv1.3");
      expect(value(proxy, "ssl_prefer_server_ciphers")).toBe("off");
      expect(value(proxy, "ssl_session_cache")).toBe("shared:SSL:10m");
      expect(value(proxy, "ssl_session_tickets")).toBe("off");
    });

    test("offers only forward-secret AEAD suites for TLS 1.2", () => {
      const ciphers = value(render().proxy, "ssl_ciphers").split(":");
      expect(ciphers.length).toBeGreaterThan(0);
      for (const cipher of ciphers) {
        expect(cipher).toMatch(/^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
      }
    });

    test("listens without ssl and has no ssl directives in plain HTTP mode", () => {
      const { main, proxy } = render({ tls: undefined });
      expect(value(proxy, "listen")).toBe("8443");
      expect(flatten(main).filter((d) => d.name.startsWith("ssl_"))).toEqual([]);
    });
  });
});
