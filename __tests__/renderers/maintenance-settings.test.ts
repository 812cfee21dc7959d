import { MaintenanceSettingsInput, renderMaintenanceSettings } from "../../renderers/maintenance-settings";

const ONE_HOST: MaintenanceSettingsInput = {
  dataDirectory: "/var/lib/registry",
  stateDirectory: "/var/lib/registry-stack-maintenance",
  collectorConfigPath: "/etc/registry-stack/collector.yml",
  schedule: "03:00",
  dryRun: false,
  writeSettleSeconds: 2,
  rules: [{ repositories: "^app/", keepTags: ["^v", "^it's$"] }],
  registryMetricsUrl: "http://127.0.0.1:5001/metrics",
  metricsIntervalSeconds: 30,
};

const settingsOf = (text: string) => Object.fromEntries(text.split("\n").filter((l) => /^[A-Z_0-9]+=/.test(l)).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));

describe("renderMaintenanceSettings", () => {
  test("one host: filesystem storage, no API and no Redis settings", () => {
    const settings = settingsOf(renderMaintenanceSettings(ONE_HOST));
    expect(settings.DATA_DIR).toBe("'/var/lib/registry'");
    expect(settings.STORAGE_ACCESS).toBeUndefined();
    expect(settings.REDIS_ADDRESSES).toBeUndefined();
  });

  test("cluster mode: plans through the registry API, serves the hold state, flushes the Redis database by a password file", () => {
    const text = renderMaintenanceSettings({
      ...ONE_HOST,
      dataDirectory: "",
      registryApi: { address: "127.0.0.1:5000", serveConfigPath: "/run/secrets/c.yml", holdStateConfigPath: "/run/secrets/h.yml" },
      redisCache: { addresses: ["redis-a:6379", "redis-b:6380"], db: 4, passwordFile: "/run/secrets/redis-password" },
    });
    expect(settingsOf(text)).toMatchObject({
      STORAGE_ACCESS: "'registry-api'",
      REGISTRY_API: "'127.0.0.1:5000'",
      REGISTRY_SERVE_CONFIG: "'/run/secrets/c.yml'",
      HOLD_STATE_CONFIG: "'/run/secrets/h.yml'",
      REDIS_ADDRESSES: "'redis-a:6379 redis-b:6380'",
      REDIS_DB: "'4'",
      REDIS_PASSWORD_FILE: "'/run/secrets/redis-password'",
    });
    expect(text).toContain("RULE_1_KEEP_TAGS='^v\n^it'\\''s$'");
  });

  test("a Redis without a password has no password file setting", () => {
    const settings = settingsOf(renderMaintenanceSettings({ ...ONE_HOST, redisCache: { addresses: ["r:6379"], db: 0 } }));
    expect(settings.REDIS_PASSWORD_FILE).toBeUndefined();
    expect(settings.REDIS_DB).toBe("'0'");
  });
});
