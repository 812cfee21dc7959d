import { value } from "../nginx-conf-parser";
import { render } from "./fixtures";

describe("renderNginxConf", () => {
  describe("HTTP redirect server", () => {
    test("is absent by default", () => {
      expect(render().servers).toHaveLength(1);
    });

    test("redirects a configured name to itself over https, without a port on 443", () => {
      const { servers } = render({ httpRedirect: { listenPort: 8080, publicPort: 443 } });
      expect(servers).toHaveLength(3);
      expect(servers[1].block).toEqual([
        { name: "listen", args: ["8080"] },
        { name: "server_name", args: ["registry.example.test", "localhost"] },
        { name: "return", args: ["301", "https://$host$request_uri"] },
      ]);
    });

    test("sends any other Host to the first configured name, never to the client's", () => {
      const { servers } = render({ httpRedirect: { listenPort: 8080, publicPort: 5443 } });
      expect(servers[2].block).toEqual([
        { name: "listen", args: ["8080", "default_server"] },
        { name: "server_name", args: ["_"] },
        { name: "return", args: ["301", "https://registry.example.test:5443$request_uri"] },
      ]);
      expect(value(servers[1].block!, "return")).toBe("301 https://$host:5443$request_uri");
    });

    test("brackets an IPv6 first name in the redirect target", () => {
      const { servers } = render({ serverNames: ["::1"], httpRedirect: { listenPort: 8080, publicPort: 443 } });
      expect(value(servers[2].block!, "return")).toBe("301 https://[::1]$request_uri");
    });
  });
});
