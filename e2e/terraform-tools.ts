import * as fs from "fs";
import * as path from "path";
import { PROVIDER_VERSIONS } from "../stacks/provider-versions";
import { CACHE_DIR } from "./images";
import { run } from "./proc";

/**
 * Terraform and the two providers for real `cdktf deploy` runs, without the Terraform registry:
 * the providers are built from the Go module proxy (cached under CACHE_DIR) and served through a
 * filesystem mirror named in a CLI config file that only the suite uses (TF_CLI_CONFIG_FILE);
 * a user's ~/.terraformrc is never read or written.
 */

type Log = (line: string) => void;

interface ProviderBuild {
  /** Registry address, e.g. kreuzwerker/docker; the label it is served as is PROVIDER_VERSIONS[source]. */
  readonly source: keyof typeof PROVIDER_VERSIONS;
  /** The Go module and the snapshot the Go module proxy serves (the tagged releases are refused there). */
  readonly module: string;
  readonly version: string;
}

/**
 * The newest snapshots the Go module proxy serves. Their CHANGELOGs' newest entries are
 * v4.6.0 (2026-09-01) and 2.9.0 (2026-05-12), the labels in PROVIDER_VERSIONS.
 */
export const PROVIDER_BUILDS: readonly ProviderBuild[] = [
  { source: "kreuzwerker/docker", module: "github.com/kreuzwerker/terraform-provider-docker", version: "v0.0.0-20260916201441-96d331c98ff4" },
  { source: "hashicorp/local", module: "github.com/terraform-providers/terraform-provider-local", version: "v1.4.1-0.20260513075820-3561e410f9fe" },
];

/** Built only when no `terraform` is on PATH. */
const TERRAFORM_MODULE = "github.com/hashicorp/terraform";
const TERRAFORM_VERSION = "v1.13.3";

const BUILD_TIMEOUT_MS = 20 * 60_000;

export interface TerraformTools {
  /** TF_CLI_CONFIG_FILE for every cdktf/terraform command of the suite. */
  readonly cliConfigFile: string;
  /** The folder holding the terraform binary in use (put first on PATH). */
  readonly terraformDir: string;
  /** What stands behind each label, for the log. */
  readonly summary: string[];
  /** Environment for cdktf and terraform: the CLI config, PATH with terraform, no calls home. */
  env(base?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
}

function goBinary(): string {
  const go = ["/usr/local/go/bin/go", "/usr/bin/go"].find((candidate) => fs.existsSync(candidate));
  if (!go) throw new Error("Go is needed to build the Terraform providers for the e2e suite; install Go 1.26 (/usr/local/go)");
  return go;
}

/**
 * `go install` refuses these modules (their go.mod names another path), so: download the module,
 * build in its folder, move the binary into the cache at the end (an interrupted build never
 * looks like a cache hit).
 */
export async function buildGoModule(module: string, version: string, binaryName: string, target: string, log: Log, packagePath = "."): Promise<void> {
  const go = goBinary();
  const work = fs.mkdtempSync(path.join(CACHE_DIR, "gobuild-"));
  try {
    const started = Date.now();
    log(`building ${module}@${version} (a few minutes on 2 cores)…`);
    const env = { ...process.env, CGO_ENABLED: "0", GOFLAGS: "-mod=mod -buildvcs=false" };
    const { stdout } = await run(go, ["mod", "download", "-json", `${module}@${version}`], { cwd: work, env, timeoutMs: BUILD_TIMEOUT_MS });
    const dir = (JSON.parse(stdout) as { Dir?: string }).Dir;
    if (!dir) throw new Error(`go mod download ${module}@${version} printed no Dir: ${stdout.slice(0, 500)}`);
    const partial = path.join(work, binaryName);
    await run(go, ["build", "-o", partial, packagePath], { cwd: dir, env, timeoutMs: BUILD_TIMEOUT_MS });
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.renameSync(partial, target);
    log(`built ${target} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function ensureBuilt(module: string, version: string, binaryName: string, log: Log): Promise<string> {
  const target = path.join(CACHE_DIR, "go-builds", `${module.replace(/\//g, "_")}@${version}`, binaryName);
  if (!fs.existsSync(target)) await buildGoModule(module, version, binaryName, target, log);
  return target;
}

function terraformOnPath(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, "terraform");
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Terraform's "unpacked" mirror layout: <host>/<namespace>/<type>/<version>/<os_arch>/terraform-provider-<type>_v<version> */
function mirrorProvider(mirrorDir: string, source: string, label: string, binary: string): void {
  const type = source.split("/")[1];
  const dir = path.join(mirrorDir, "registry.terraform.io", source, label, "linux_amd64");
  const file = path.join(dir, `terraform-provider-${type}_v${label}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.rmSync(file, { force: true });
  // A hard link: terraform init links the mirror's file into each stack's .terraform, no copies.
  fs.linkSync(binary, file);
}

/** Builds what is missing (cached between runs) and writes the suite's CLI config. */
export async function ensureTerraformTools(log: Log = () => undefined): Promise<TerraformTools> {
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const mirrorDir = path.join(CACHE_DIR, "terraform-mirror");
  const summary: string[] = [];
  for (const build of PROVIDER_BUILDS) {
    const type = build.source.split("/")[1];
    const binary = await ensureBuilt(build.module, build.version, `terraform-provider-${type}`, log);
    const label = PROVIDER_VERSIONS[build.source];
    mirrorProvider(mirrorDir, build.source, label, binary);
    summary.push(`${build.source} ${label} = ${build.module}@${build.version}`);
  }

  let terraform = terraformOnPath();
  if (terraform) {
    summary.push(`terraform from PATH: ${terraform}`);
  } else {
    terraform = await ensureBuilt(TERRAFORM_MODULE, TERRAFORM_VERSION, "terraform", log);
    summary.push(`terraform ${TERRAFORM_VERSION} built from ${TERRAFORM_MODULE}: ${terraform}`);
  }
  const { stdout } = await run(terraform, ["version"], { timeoutMs: 30_000, env: { ...process.env, CHECKPOINT_DISABLE: "1" } });
  summary.push(`terraform version: ${stdout.split("\n")[0]}`);

  const cliConfigFile = path.join(CACHE_DIR, "terraform-e2e.tfrc");
  const include = PROVIDER_BUILDS.map((b) => `"registry.terraform.io/${b.source}"`).join(", ");
  fs.writeFileSync(
    cliConfigFile,
    [
      "# Written by e2e/terraform-tools.ts: providers from a local mirror, nothing from a registry.",
      "provider_installation {",
      "  filesystem_mirror {",
      `    path    = ${JSON.stringify(mirrorDir)}`,
      `    include = [${include}]`,
      "  }",
      "}",
      "",
    ].join("\n"),
  );
  const terraformDir = path.dirname(terraform);
  return {
    cliConfigFile,
    terraformDir,
    summary,
    env: (base = process.env) => ({
      ...base,
      TF_CLI_CONFIG_FILE: cliConfigFile,
      PATH: `${terraformDir}${path.delimiter}${base.PATH ?? ""}`,
      CHECKPOINT_DISABLE: "1",
      TF_IN_AUTOMATION: "1",
      // cdktf would point TF_PLUGIN_CACHE_DIR at a shared folder, which parallel inits race on;
      // the mirror's files are linked into each stack's .terraform instead.
      CDKTF_DISABLE_PLUGIN_CACHE_ENV: "true",
    }),
  };
}
