import { renderDaemonJson } from "../../renderers/daemon-json";

const NONE = { insecureRegistries: [], managedRegistries: [] };

describe("renderDaemonJson", () => {
  test("renders an empty object when there is no file and nothing to add", () => {
    expect(renderDaemonJson(undefined, NONE)).toBe("{}\n");
  });

  test("creates the key when there is no file", () => {
    expect(
      renderDaemonJson(undefined, { insecureRegistries: ["registry.test:8443"], managedRegistries: ["registry.test:8443"] }),
    ).toBe('{\n  "insecure-registries": [\n    "registry.test:8443"\n  ]\n}\n');
  });

  test("keeps other keys and their order, replaces managed entries and keeps foreign ones first", () => {
    const existing = JSON.stringify({
      "log-driver": "json-file",
      "insecure-registries": ["other:5000", "old.test:8443"],
      "log-opts": { "max-size": "10m" },
      debug: true,
    });
    const result = renderDaemonJson(existing, {
      insecureRegistries: ["new.test:8443", "other:5000"],
      managedRegistries: ["old.test:8443", "new.test:8443"],
    });
    expect(result).toBe(
      [
        "{",
        '  "log-driver": "json-file",',
        '  "insecure-registries": [',
        '    "other:5000",',
        '    "new.test:8443"',
        "  ],",
        '  "log-opts": {',
        '    "max-size": "10m"',
        "  },",
        '  "debug": true',
        "}",
        "",
      ].join("\n"),
    );
  });

  test("appends the key after the existing keys when it was absent", () => {
    const result = renderDaemonJson('{"debug": true}', { insecureRegistries: ["a:1"], managedRegistries: [] });
    expect(Object.keys(JSON.parse(result))).toEqual(["debug", "insecure-registries"]);
  });

  test("keeps an existing key as [] when every entry was managed", () => {
    const result = renderDaemonJson('{"insecure-registries": ["old:443"], "debug": false}', {
      insecureRegistries: [],
      managedRegistries: ["old:443"],
    });
    expect(JSON.parse(result)).toEqual({ "insecure-registries": [], debug: false });
  });

  test("does not add the key when it was absent and the result is empty", () => {
    const result = renderDaemonJson('{"debug": true}', { insecureRegistries: [], managedRegistries: ["old:443"] });
    expect(result).toBe('{\n  "debug": true\n}\n');
  });

  test("removes duplicates, existing order first", () => {
    const result = renderDaemonJson('{"insecure-registries": ["b:1", "a:1", "b:1"]}', {
      insecureRegistries: ["c:1", "a:1", "c:1"],
      managedRegistries: [],
    });
    expect(JSON.parse(result)["insecure-registries"]).toEqual(["b:1", "a:1", "c:1"]);
  });

  test("treats an empty file like no file, as dockerd does", () => {
    expect(renderDaemonJson(" \n", NONE)).toBe("{}\n");
    expect(renderDaemonJson("\uFEFF{\"debug\": true}", NONE)).toBe('{\n  "debug": true\n}\n');
  });

  test("fails when the content is not valid JSON, naming the source", () => {
    expect(() => renderDaemonJson('{"debug": true,}', NONE, "/etc/docker/daemon.json")).toThrow(
      /^\/etc\/docker\/daemon\.json is not valid JSON \(.+\); dockerd would refuse to start with it: fix or remove the file, then run again$/,
    );
  });

  test("fails when the content is not a JSON object", () => {
    expect(() => renderDaemonJson('["a"]', NONE)).toThrow(
      "daemon.json is not a JSON object (got an array); daemon.json must be an object like {}: fix or remove the file, then run again",
    );
    expect(() => renderDaemonJson("null", NONE, "d.json")).toThrow("d.json is not a JSON object (got null)");
  });

  test("fails when insecure-registries is not an array of strings", () => {
    expect(() => renderDaemonJson('{"insecure-registries": "a:1"}', NONE, "d.json")).toThrow(
      'd.json: "insecure-registries" must be an array of strings, got "a:1"; fix it by hand, then run again',
    );
  });
});
