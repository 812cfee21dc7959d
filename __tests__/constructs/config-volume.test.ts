import "cdktf/lib/testing/adapters/jest";
import { ContainerUpload } from "@cdktf/provider-docker/lib/container";
import { Testing } from "cdktf";
import { ConfigVolume } from "../../constructs/config-volume";

function synth(uploads: ContainerUpload[]) {
  let mount: unknown;
  const json = JSON.parse(
    Testing.synthScope((scope) => {
      mount = new ConfigVolume(scope, "config", { containerName: "c", image: "img", directory: "/etc/app", uploads }).mount;
    }),
  );
  const [volume] = Object.values(json.resource.docker_volume) as Array<{ name: string }>;
  const [seeder] = Object.values(json.resource.docker_container) as Array<Record<string, unknown>>;
  return { volume, seeder, mount };
}

const CONF: ContainerUpload = { file: "/etc/app/app.conf", content: "listen 80;", permissions: "0644" };
const KEY: ContainerUpload = { file: "/etc/app/tls/key", source: "assets/key", sourceHash: "AAAA", permissions: "0600" };

describe("ConfigVolume", () => {
  test("uploads into a seeder that is created, never started, has no network and mounts the volume read-write", () => {
    const { seeder, volume } = synth([CONF, KEY]);
    expect(seeder).toMatchObject({ name: "c-config-seed", image: "img", start: false, must_run: false, network_mode: "none" });
    expect(seeder.upload).toEqual([
      { file: "/etc/app/app.conf", content: "listen 80;", permissions: "0644" },
      { file: "/etc/app/tls/key", source: "assets/key", source_hash: "AAAA", permissions: "0600" },
    ]);
    expect(seeder.volumes).toEqual([{ volume_name: expect.stringContaining("docker_volume.config_volume_"), container_path: "/etc/app" }]);
    expect(volume.name).toMatch(/^c-config-[0-9a-f]{12}$/);
  });

  test("gives the consuming container a read-only mount", () => {
    expect(synth([CONF]).mount).toMatchObject({ containerPath: "/etc/app", readOnly: true });
  });

  test("names the volume after the files: any change gives a new volume, the same files the same one", () => {
    const name = (uploads: ContainerUpload[]) => synth(uploads).volume.name;
    expect(name([CONF, KEY])).toBe(name([CONF, KEY]));
    expect(name([{ ...CONF, content: "listen 81;" }, KEY])).not.toBe(name([CONF, KEY]));
    expect(name([CONF, { ...KEY, sourceHash: "BBBB" }])).not.toBe(name([CONF, KEY]));
    expect(name([CONF, { ...KEY, permissions: "0640" }])).not.toBe(name([CONF, KEY]));
    expect(name([CONF])).not.toBe(name([CONF, KEY]));
  });

  test("refuses a file outside its directory", () => {
    expect(() => synth([CONF, { file: "/etc/other/x", content: "x" }])).toThrow(/uploads outside \/etc\/app: \/etc\/other\/x/);
  });
});
