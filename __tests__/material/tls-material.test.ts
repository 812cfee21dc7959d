import { normalizeIdentity } from "../../material/tls-material";

describe("normalizeIdentity", () => {
  test("lower-cases and de-duplicates names and writes IPs canonically", () => {
    expect(
      normalizeIdentity({
        hostnames: ["Registry.Example.TEST", "registry.example.test", "*.apps.example.test"],
        ipAddresses: ["127.0.0.1", "0:0::1", "::1", "::FFFF:192.0.2.1", "2001:DB8:0:0::5"],
      }),
    ).toEqual({
      hostnames: ["registry.example.test", "*.apps.example.test"],
      ipAddresses: ["127.0.0.1", "::1", "::ffff:c000:201", "2001:db8::5"],
    });
  });

  test("does not validate: the config schema is the one place for host name and address rules", () => {
    expect(normalizeIdentity({ hostnames: ["A_B"], ipAddresses: ["1.2.3"] })).toEqual({ hostnames: ["a_b"], ipAddresses: ["1.2.3"] });
  });
});
