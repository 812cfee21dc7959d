import { all, blockOf, value } from "../nginx-conf-parser";
import { render } from "./fixtures";

describe("renderNginxConf", () => {
  describe("health server", () => {
    test("is absent by default", () => {
      expect(render({ httpRedirect: { listenPort: 8080, publicPort: 443 } }).servers).toHaveLength(3);
    });

    test("answers only /healthz over plain HTTP on loopback", () => {
      const { servers } = render({ healthListenPort: 8081, httpRedirect: { listenPort: 8080, publicPort: 443 } });
      expect(servers).toHaveLength(4);
      const health = servers[3].block!;
      expect(health.filter((d) => !d.block)).toEqual([{ name: "listen", args: ["127.0.0.1:8081"] }]);
      expect(all(health, "location").map((d) => d.args.join(" "))).toEqual(["= /healthz", "/"]);
      expect(value(blockOf(health, "location", "="), "return")).toBe("200 ok\\n");
      expect(blockOf(health, "location", "/")).toEqual([{ name: "return", args: ["404"] }]);
    });
  });
});
