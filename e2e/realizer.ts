import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { DockerApi, DockerApiError, pollUntil } from "./docker-api";
import { CommandError, run } from "./proc";
import { singleFileTar } from "./tar";

/**
 * Test-only stand-in for `cdktf deploy`: reads a synthesized cdk.tf.json and creates what it
 * declares on a Docker Engine the way kreuzwerker/docker 3.6.2 and hashicorp/local would.
 *
 * It supports a deliberately small subset. Anything outside it (an unknown resource type or
 * attribute, an expression other than `${type.name.attribute}`, a function call, `dynamic`,
 * `count`/`for_each`, data sources, variables…) is refused with a RealizeError naming the
 * resource address and attribute, before anything is created: it must never silently do
 * something different from the provider.
 *
 * Deliberate differences, all in teardown: destroy() ignores lifecycle.prevent_destroy (it
 * cleans up a private test engine) and never removes images (they were imported, not pulled).
 */

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export class RealizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RealizeError";
  }
}

// ---------------------------------------------------------------------------------------------
// Supported schema

type ScalarKind = "string" | "number" | "bool" | "stringList" | "stringMap" | "json";
interface BlockKind {
  block: Schema;
  /** A block that may appear at most once (max_items = 1). */
  single?: boolean;
}
interface AttrSpec {
  kind: ScalarKind | BlockKind;
  required?: boolean;
  /** Accepted only with this value (the provider's default): the realizer does not implement others. */
  only?: string | number | boolean;
}
type Schema = Record<string, AttrSpec>;

const str: AttrSpec = { kind: "string" };
const num: AttrSpec = { kind: "number" };
const bool: AttrSpec = { kind: "bool" };
const strList: AttrSpec = { kind: "stringList" };
const strMap: AttrSpec = { kind: "stringMap" };
const required = (spec: AttrSpec): AttrSpec => ({ ...spec, required: true });
const labelsBlock: AttrSpec = { kind: { block: { label: required(str), value: required(str) } } };

/** Bound on an attached container's run (the provider has none). */
const ATTACH_TIMEOUT_MS = 600_000;

const CONTAINER: Schema = {
  name: required(str),
  image: required(str),
  command: strList,
  entrypoint: strList,
  env: strList,
  user: str,
  hostname: str,
  working_dir: str,
  restart: str,
  max_retry_count: num,
  memory: num,
  memory_swap: num,
  network_mode: str,
  shm_size: num,
  read_only: bool,
  init: bool,
  security_opts: strList,
  tmpfs: strMap,
  log_driver: str,
  log_opts: strMap,
  stop_signal: str,
  stop_timeout: num,
  start: bool,
  must_run: bool,
  container_read_refresh_timeout_milliseconds: num,
  wait: bool,
  wait_timeout: num,
  destroy_grace_seconds: num,
  remove_volumes: bool,
  privileged: { kind: "bool", only: false },
  publish_all_ports: { kind: "bool", only: false },
  rm: { kind: "bool", only: false },
  attach: bool,
  logs: { kind: "bool", only: false },
  tty: { kind: "bool", only: false },
  stdin_open: { kind: "bool", only: false },
  labels: labelsBlock,
  capabilities: { kind: { single: true, block: { add: strList, drop: strList } } },
  healthcheck: {
    kind: {
      single: true,
      block: { test: required(strList), interval: str, timeout: str, start_period: str, retries: num },
    },
  },
  ports: {
    kind: { block: { internal: required(num), external: num, ip: str, protocol: str } },
  },
  networks_advanced: {
    kind: { block: { name: required(str), aliases: strList, ipv4_address: str, ipv6_address: str } },
  },
  volumes: {
    kind: { block: { container_path: required(str), host_path: str, volume_name: str, read_only: bool } },
  },
  upload: {
    kind: {
      block: {
        file: required(str),
        content: str,
        content_base64: str,
        source: str,
        source_hash: str,
        executable: bool,
        permissions: str,
      },
    },
  },
};

const NETWORK: Schema = {
  name: required(str),
  driver: { kind: "string", only: "bridge" },
  internal: bool,
  attachable: bool,
  check_duplicate: bool,
  labels: labelsBlock,
};

const VOLUME: Schema = {
  name: required(str),
  driver: { kind: "string", only: "local" },
  labels: labelsBlock,
};

const IMAGE: Schema = {
  name: required(str),
  // Both only matter when the provider removes the image on destroy; the realizer never does.
  keep_locally: bool,
  force_remove: bool,
};

const LOCAL_FILE: Schema = {
  filename: required(str),
  content: str,
  content_base64: str,
  source: str,
  file_permission: str,
  directory_permission: str,
};

/** Terraform's built-in terraform_data (see the terraform_data region at the end of the file). */
const TERRAFORM_DATA: Schema = {
  input: { kind: "json" },
  triggers_replace: { kind: "json" },
};

type ResourceType =
  | "docker_network"
  | "docker_volume"
  | "docker_image"
  | "docker_container"
  | "local_file"
  | "local_sensitive_file"
  | "terraform_data";

const SCHEMAS: Record<ResourceType, Schema> = {
  docker_network: NETWORK,
  docker_volume: VOLUME,
  docker_image: IMAGE,
  docker_container: CONTAINER,
  local_file: LOCAL_FILE,
  local_sensitive_file: LOCAL_FILE,
  terraform_data: TERRAFORM_DATA,
};

/** Attributes that `${type.name.attr}` may read. */
const READABLE: Record<ResourceType, readonly string[]> = {
  docker_network: ["name", "id"],
  docker_volume: ["name", "id"],
  docker_image: ["name", "image_id"],
  docker_container: ["name", "id"],
  local_file: ["filename", "id", "content_sha256"],
  local_sensitive_file: ["filename", "id", "content_sha256"],
  terraform_data: ["id"],
};

/** Creation order among resources that do not depend on each other. */
const RANK: Record<ResourceType, number> = {
  docker_network: 0,
  docker_volume: 1,
  docker_image: 2,
  docker_container: 3,
  local_file: 4,
  local_sensitive_file: 4,
  terraform_data: 4,
};

const TOP_LEVEL_IGNORED = new Set(["//", "terraform", "provider", "output"]);
/** Top-level blocks checked by checkTopLevelBlock (terraform_data region below). */
const TOP_LEVEL_CHECKED = new Set(["removed"]);

// ---------------------------------------------------------------------------------------------
// Plan: parse and validate everything before touching the engine

export interface PlannedResource {
  /** "type.logicalId" */
  address: string;
  type: ResourceType;
  logicalId: string;
  /** The resource's arguments without "//", depends_on and lifecycle. */
  config: JsonObject;
  /** Addresses this resource needs first (references and depends_on). */
  dependsOn: string[];
  preventDestroy: boolean;
  ignoreChanges: string[];
  /** local-exec provisioners (terraform_data only). */
  provisioners: LocalExec[];
}

export interface StackPlan {
  file: string;
  /** Terraform's working directory (cdktf.out/stacks/<stack>): relative paths resolve here. */
  stackDir: string;
  /** In creation order. */
  resources: PlannedResource[];
  outputs: Record<string, Json>;
}

interface Ref {
  address: string;
  type: ResourceType;
  attribute: string;
}

/** Reads and validates a cdk.tf.json; throws RealizeError for anything unsupported. Needs no engine. */
export function planStack(cdkTfJsonPath: string): StackPlan {
  const file = path.resolve(cdkTfJsonPath);
  const doc = JSON.parse(fs.readFileSync(file, "utf8")) as Json;
  if (!isObject(doc)) throw new RealizeError(`${file}: not a JSON object`);
  for (const key of Object.keys(doc)) {
    if (TOP_LEVEL_CHECKED.has(key)) {
      checkTopLevelBlock(key, doc[key], file);
    } else if (key !== "resource" && !TOP_LEVEL_IGNORED.has(key)) {
      throw new RealizeError(`${file}: top-level block "${key}" is not supported by the realizer`);
    }
  }
  const resourceBlock = doc["resource"] ?? {};
  if (!isObject(resourceBlock)) throw new RealizeError(`${file}: "resource" is not an object`);

  const declared = new Map<string, ResourceType>();
  const raw: { address: string; type: ResourceType; logicalId: string; body: JsonObject }[] = [];
  for (const [type, byId] of Object.entries(resourceBlock)) {
    if (!(type in SCHEMAS)) throw new RealizeError(`resource type "${type}" is not supported by the realizer`);
    if (!isObject(byId)) throw new RealizeError(`resource.${type}: not an object`);
    for (const [logicalId, body] of Object.entries(byId)) {
      const address = `${type}.${logicalId}`;
      if (!isObject(body)) throw new RealizeError(`${address}: not an object`);
      declared.set(address, type as ResourceType);
      raw.push({ address, type: type as ResourceType, logicalId, body });
    }
  }

  const resources: PlannedResource[] = raw.map(({ address, type, logicalId, body }) => {
    const config: JsonObject = {};
    const dependsOn = new Set<string>();
    let preventDestroy = false;
    let ignoreChanges: string[] = [];
    let provisioners: LocalExec[] = [];
    for (const [key, value] of Object.entries(body)) {
      if (key === "//") continue;
      if (key === "depends_on") {
        for (const dep of asArray(value, `${address} depends_on`)) {
          if (typeof dep !== "string" || !declared.has(dep)) {
            throw new RealizeError(`${address} depends_on: ${JSON.stringify(dep)} is not a resource of this stack`);
          }
          dependsOn.add(dep);
        }
      } else if (key === "lifecycle") {
        if (!isObject(value)) throw new RealizeError(`${address} lifecycle: not an object`);
        preventDestroy = value["prevent_destroy"] === true;
        const ic = value["ignore_changes"];
        if (Array.isArray(ic)) ignoreChanges = ic.filter((x): x is string => typeof x === "string");
        else if (typeof ic === "string") ignoreChanges = [ic];
      } else if (key === "provisioner" && type === "terraform_data") {
        provisioners = parseProvisioners(value, address);
      } else if (["count", "for_each", "provider", "provisioner", "connection"].includes(key)) {
        throw new RealizeError(`${address}: meta-argument "${key}" is not supported by the realizer`);
      } else {
        config[key] = value;
      }
    }
    validateBlock(config, SCHEMAS[type], address, "");
    checkValues(type, config, address, path.dirname(file));
    for (const ref of collectRefs(config, address, "", declared)) dependsOn.add(ref.address);
    dependsOn.delete(address);
    return { address, type, logicalId, config, dependsOn: [...dependsOn].sort(), preventDestroy, ignoreChanges, provisioners };
  });

  const outputsBlock = doc["output"] ?? {};
  const outputs: Record<string, Json> = {};
  if (isObject(outputsBlock)) {
    for (const [name, body] of Object.entries(outputsBlock)) {
      if (isObject(body) && "value" in body) outputs[name] = body["value"];
    }
  }
  return { file, stackDir: path.dirname(file), resources: creationOrder(resources), outputs };
}

function validateBlock(config: JsonObject, schema: Schema, address: string, prefix: string): void {
  for (const [key, spec] of Object.entries(schema)) {
    if (spec.required && !(key in config)) throw new RealizeError(`${address}: required attribute "${prefix}${key}" is missing`);
  }
  for (const [key, value] of Object.entries(config)) {
    const where = `${prefix}${key}`;
    if (key === "dynamic") throw new RealizeError(`${address} ${where}: dynamic blocks are not supported by the realizer`);
    const spec = schema[key];
    if (!spec) throw new RealizeError(`${address}: attribute "${where}" is not supported by the realizer`);
    checkKind(value, spec, address, where);
  }
}

function checkKind(value: Json, spec: AttrSpec, address: string, where: string): void {
  const fail = (what: string) => new RealizeError(`${address} ${where}: ${what}`);
  const kind = spec.kind;
  if (typeof kind !== "string") {
    const items = blockItems(value, address, where);
    if (kind.single && items.length > 1) throw fail("at most one block allowed");
    items.forEach((item, i) => validateBlock(item, kind.block, address, kind.single ? `${where}.` : `${where}[${i}].`));
    return;
  }
  switch (kind) {
    case "string":
      if (typeof value !== "string") throw fail(`expected a string, got ${JSON.stringify(value)}`);
      break;
    case "number":
      if (typeof value !== "number") throw fail(`expected a literal number, got ${JSON.stringify(value)}`);
      break;
    case "bool":
      if (typeof value !== "boolean") throw fail(`expected a literal boolean, got ${JSON.stringify(value)}`);
      break;
    case "stringList":
      if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
        throw fail(`expected a list of strings, got ${JSON.stringify(value)}`);
      }
      break;
    case "json":
      checkJsonLiteral(value, address, where);
      break;
    case "stringMap":
      if (!isObject(value) || !Object.values(value).every((v) => typeof v === "string")) {
        throw fail(`expected a map of strings, got ${JSON.stringify(value)}`);
      }
      for (const k of Object.keys(value)) {
        if (k.includes("${") || k.includes("%{")) throw fail(`expressions in map keys are not supported: ${k}`);
      }
      break;
  }
  if (spec.only !== undefined && value !== spec.only) {
    throw fail(`only ${JSON.stringify(spec.only)} (the provider default) is supported by the realizer, got ${JSON.stringify(value)}`);
  }
}

/** Value rules the provider enforces (at plan or apply), checked before anything is created. */
function checkValues(type: ResourceType, config: JsonObject, address: string, stackDir: string): void {
  const literal = (v: Json | undefined): v is string => typeof v === "string" && !v.includes("${");
  if (type === "docker_container") {
    const command = config["command"];
    if (Array.isArray(command) && command.includes("")) throw new RealizeError(`${address} command: values for command may not be empty`);
    const health = config["healthcheck"] === undefined ? [] : blockItems(config["healthcheck"], address, "healthcheck");
    for (const h of health) {
      for (const key of ["interval", "timeout", "start_period"]) {
        if (literal(h[key])) parseGoDuration(h[key] as string, `${address} healthcheck.${key}`);
      }
    }
    const uploads = config["upload"] === undefined ? [] : blockItems(config["upload"], address, "upload");
    uploads.forEach((u, i) => {
      const where = `${address} upload[${i}]`;
      const given = ["content", "content_base64", "source"].filter((k) => typeof u[k] === "string" && u[k] !== "");
      if (given.length !== 1) throw new RealizeError(`${where}: exactly one of content, content_base64 or source must be set`);
      if (literal(u["permissions"])) parseMode(u["permissions"] as string, `${where}.permissions`);
      if (literal(u["content_base64"])) decodeBase64(u["content_base64"] as string, `${where}.content_base64`);
      if (given[0] === "source") {
        if (typeof u["source_hash"] !== "string" || u["source_hash"] === "") {
          throw new RealizeError(`${where}: source upload without source_hash: the provider would not notice when the file changes`);
        }
        if (literal(u["source"])) readSource(stackDir, u["source"] as string, `${where}.source`);
      }
    });
  }
  if (type === "local_file" || type === "local_sensitive_file") {
    const given = ["content", "content_base64", "source"].filter((k) => k in config);
    if (given.length !== 1) throw new RealizeError(`${address}: exactly one of content, content_base64 or source must be set`);
    for (const key of ["file_permission", "directory_permission"]) {
      if (literal(config[key])) parseMode(config[key] as string, `${address} ${key}`);
    }
    if (literal(config["source"])) readSource(stackDir, config["source"] as string, `${address} source`);
  }
}

function blockItems(value: Json, address: string, where: string): JsonObject[] {
  // Terraform's JSON syntax allows one block as an object or any number as an array.
  const items = Array.isArray(value) ? value : [value];
  return items.map((item, i) => {
    if (!isObject(item)) throw new RealizeError(`${address} ${where}[${i}]: expected a block object, got ${JSON.stringify(item)}`);
    return item;
  });
}

function creationOrder(resources: PlannedResource[]): PlannedResource[] {
  const pending = new Map(resources.map((r) => [r.address, r]));
  const done = new Set<string>();
  const ordered: PlannedResource[] = [];
  while (pending.size > 0) {
    const ready = [...pending.values()]
      .filter((r) => r.dependsOn.every((d) => done.has(d)))
      .sort((a, b) => RANK[a.type] - RANK[b.type] || a.address.localeCompare(b.address));
    if (ready.length === 0) {
      throw new RealizeError(`dependency cycle among: ${[...pending.keys()].join(", ")}`);
    }
    const next = ready[0];
    ordered.push(next);
    done.add(next.address);
    pending.delete(next.address);
  }
  return ordered;
}

// ---------------------------------------------------------------------------------------------
// Expressions: only literal text, $${ and %%{ escapes, and ${type.name.attribute}

type Piece = { text: string } | { ref: Ref; expr: string };

const REF_PATTERN = /^\s*([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_]*)\s*$/;

function parseTemplate(s: string, where: string, declared: ReadonlyMap<string, ResourceType>): Piece[] {
  const pieces: Piece[] = [];
  let text = "";
  let i = 0;
  while (i < s.length) {
    if (s.startsWith("$${", i) || s.startsWith("%%{", i)) {
      text += s.slice(i + 1, i + 3);
      i += 3;
    } else if (s.startsWith("%{", i)) {
      throw new RealizeError(`${where}: template directives (%{…}) are not supported by the realizer: ${shorten(s)}`);
    } else if (s.startsWith("${", i)) {
      const end = s.indexOf("}", i + 2);
      if (end < 0) throw new RealizeError(`${where}: unterminated \${ in ${shorten(s)}`);
      const expr = s.slice(i + 2, end);
      const m = REF_PATTERN.exec(expr);
      const type = m ? declared.get(`${m[1]}.${m[2]}`) : undefined;
      if (!m || type === undefined) {
        throw new RealizeError(
          `${where}: unsupported expression \${${expr}} (the realizer resolves only \${type.name.attribute} ` +
            `references to resources of this stack)`,
        );
      }
      if (!READABLE[type].includes(m[3])) {
        throw new RealizeError(
          `${where}: unsupported attribute in \${${expr}} (readable ${type} attributes: ${READABLE[type].join(", ")})`,
        );
      }
      if (text) pieces.push({ text });
      text = "";
      pieces.push({ ref: { address: `${m[1]}.${m[2]}`, type, attribute: m[3] }, expr });
      i = end + 1;
    } else {
      text += s[i];
      i += 1;
    }
  }
  if (text || pieces.length === 0) pieces.push({ text });
  return pieces;
}

function collectRefs(value: Json, address: string, where: string, declared: ReadonlyMap<string, ResourceType>): Ref[] {
  if (typeof value === "string") {
    return parseTemplate(value, `${address} ${where}`.trim(), declared).flatMap((p) => ("ref" in p ? [p.ref] : []));
  }
  if (Array.isArray(value)) return value.flatMap((v, i) => collectRefs(v, address, `${where}[${i}]`, declared));
  if (isObject(value)) {
    return Object.entries(value).flatMap(([k, v]) => collectRefs(v, address, where ? `${where}.${k}` : k, declared));
  }
  return [];
}

// ---------------------------------------------------------------------------------------------
// Apply

export interface RealizeOptions {
  api: DockerApi;
  log?: (line: string) => void;
}

export interface CreatedResource {
  address: string;
  type: ResourceType;
  /** Engine ID (network/container ID, volume or image name/ID) or the absolute file path. */
  id: string;
  /** A docker_volume that existed before (kept by a previous destroy({ keepVolumes: true })). */
  reused: boolean;
}

export interface DestroyOptions {
  /** Keep docker_volume resources (to prove data survives a redeploy). */
  keepVolumes?: boolean;
}

interface ContainerInspect {
  Id: string;
  State: {
    Running: boolean;
    Status: string;
    ExitCode: number;
    FinishedAt: string;
    Health?: { Status: string; Log?: { Output: string; ExitCode: number }[] };
  };
}

export class Realization {
  /** Everything created, in creation order. */
  readonly created: CreatedResource[] = [];
  /** Addresses with lifecycle.prevent_destroy = true (recorded for tests, not honoured by destroy). */
  readonly preventDestroy: string[];
  private readonly state = new Map<string, Record<string, string>>();
  private readonly declared: Map<string, ResourceType>;
  private readonly log: (line: string) => void;
  private destroyed = false;

  constructor(
    readonly plan: StackPlan,
    private readonly api: DockerApi,
    log?: (line: string) => void,
  ) {
    this.declared = new Map(plan.resources.map((r) => [r.address, r.type]));
    this.preventDestroy = plan.resources.filter((r) => r.preventDestroy).map((r) => r.address);
    this.log = log ?? (() => undefined);
  }

  /** A readable attribute of a created resource (e.g. attribute("docker_container.x", "name")). */
  attribute(address: string, attribute: string): string {
    const value = this.state.get(address)?.[attribute];
    if (value === undefined) throw new RealizeError(`${address}.${attribute}: not known (not created, or not a readable attribute)`);
    return value;
  }

  /** Evaluates one output whose value is a string (plain or with ${type.name.attr} references), number or bool. */
  output(name: string): string {
    if (!(name in this.plan.outputs)) throw new RealizeError(`output "${name}" is not declared by the stack`);
    const value = this.plan.outputs[name];
    if (typeof value === "number" || typeof value === "boolean") return String(value);
    if (typeof value !== "string") throw new RealizeError(`output "${name}": only string values are supported, got ${JSON.stringify(value)}`);
    return this.resolve(value, `output "${name}"`);
  }

  /** All outputs (throws if any is not evaluable; use output(name) to pick). */
  outputs(): Record<string, string> {
    return Object.fromEntries(Object.keys(this.plan.outputs).map((name) => [name, this.output(name)]));
  }

  /** Tears down in reverse creation order; continues past errors and reports them all at the end. */
  async destroy(options: DestroyOptions = {}): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const errors: string[] = [];
    for (const res of [...this.created].reverse()) {
      try {
        await this.destroyOne(res, options);
      } catch (err) {
        errors.push(`${res.address}: ${(err as Error).message}`);
      }
    }
    if (errors.length > 0) throw new RealizeError(`destroy failed:\n${errors.join("\n")}`);
  }

  /** @internal used by realize() */
  async apply(): Promise<void> {
    for (const res of this.plan.resources) {
      this.log(`creating ${res.address}`);
      switch (res.type) {
        case "docker_network":
          await this.createNetwork(res);
          break;
        case "docker_volume":
          await this.createVolume(res);
          break;
        case "docker_image":
          await this.resolveImage(res);
          break;
        case "docker_container":
          await this.createContainer(res);
          break;
        case "local_file":
        case "local_sensitive_file":
          this.createLocalFile(res);
          break;
        case "terraform_data":
          await this.createTerraformData(res);
          break;
      }
    }
  }

  private resolve(template: string, where: string): string {
    return parseTemplate(template, where, this.declared)
      .map((p) => ("text" in p ? p.text : this.attribute(p.ref.address, p.ref.attribute)))
      .join("");
  }

  private async createNetwork(res: PlannedResource): Promise<void> {
    const c = new ConfigReader(res, (s, w) => this.resolve(s, w));
    const name = c.string("name");
    const created = await this.api.call<{ Id: string }>({
      method: "POST",
      path: "/networks/create",
      json: {
        Name: name,
        // Fail on a leftover network of the same name instead of creating an ambiguous twin.
        CheckDuplicate: true,
        Driver: c.optString("driver") ?? "bridge",
        Internal: c.optBool("internal") ?? false,
        Attachable: c.optBool("attachable") ?? false,
        Labels: c.labels("labels"),
        IPAM: { Driver: "default" },
      },
    });
    this.record(res, created.Id, false, { name, id: created.Id });
  }

  private async createVolume(res: PlannedResource): Promise<void> {
    const c = new ConfigReader(res, (s, w) => this.resolve(s, w));
    const name = c.string("name");
    const existed = (await this.api.find(`/volumes/${encodeURIComponent(name)}`)) !== undefined;
    // Like the provider: creating an existing volume returns it, with its data.
    await this.api.call({
      method: "POST",
      path: "/volumes/create",
      json: { Name: name, Driver: c.optString("driver") ?? "local", Labels: c.labels("labels") },
    });
    if (existed) this.log(`${res.address}: reusing existing volume ${name}`);
    this.record(res, name, existed, { name, id: name });
  }

  private async resolveImage(res: PlannedResource): Promise<void> {
    const c = new ConfigReader(res, (s, w) => this.resolve(s, w));
    const name = c.string("name");
    const image = await this.api.find<{ Id: string }>(`/images/${name}/json`);
    if (!image) {
      throw new RealizeError(`${res.address} name: image "${name}" is not present in the engine; the realizer never pulls (import or tag it first)`);
    }
    this.record(res, image.Id, false, { name, image_id: image.Id });
  }

  private async createContainer(res: PlannedResource): Promise<void> {
    const c = new ConfigReader(res, (s, w) => this.resolve(s, w));
    const name = c.string("name");
    const image = c.string("image");
    const a = res.address;

    const command = c.optStringList("command");
    if (command?.some((v) => v === "")) throw new RealizeError(`${a} command: values for command may not be empty`);

    const networks = c.blocks("networks_advanced").map((n) => ({
      name: n.string("name"),
      endpoint: {
        Aliases: n.optStringList("aliases") ?? [],
        IPAMConfig: { IPv4Address: n.optString("ipv4_address") ?? "", IPv6Address: n.optString("ipv6_address") ?? "" },
      },
    }));
    const networkMode = c.optString("network_mode");
    if (networkMode !== undefined && networks.length > 0) {
      throw new RealizeError(`${a}: network_mode "${networkMode}" together with networks_advanced is not implemented by the realizer`);
    }
    if (networkMode === undefined && networks.length === 0) {
      throw new RealizeError(
        `${a} networks_advanced: missing; the provider would attach the container to the default bridge, which the e2e engine does not have`,
      );
    }

    const exposedPorts: Record<string, Record<string, never>> = {};
    const portBindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const p of c.blocks("ports")) {
      const key = `${p.number("internal")}/${p.optString("protocol") ?? "tcp"}`;
      exposedPorts[key] = {};
      const external = p.optNumber("external");
      (portBindings[key] ??= []).push({
        // The provider's default is 0.0.0.0: a missing ip publishes on every interface.
        HostIp: p.optString("ip") ?? "0.0.0.0",
        HostPort: external === undefined ? "" : String(external),
      });
    }

    const binds: string[] = [];
    const anonymousVolumes: Record<string, Record<string, never>> = {};
    for (const v of c.blocks("volumes")) {
      const containerPath = v.string("container_path");
      const hostPath = v.optString("host_path");
      const volumeName = v.optString("volume_name");
      const ro = v.optBool("read_only") ? ":ro" : "";
      if (hostPath !== undefined && volumeName !== undefined) throw new RealizeError(`${a} volumes: both host_path and volume_name set`);
      if (hostPath !== undefined) {
        if (!path.isAbsolute(hostPath)) throw new RealizeError(`${a} volumes.host_path: must be absolute, got ${hostPath}`);
        binds.push(`${hostPath}:${containerPath}${ro}`);
      } else if (volumeName !== undefined) {
        binds.push(`${volumeName}:${containerPath}${ro}`);
      } else {
        anonymousVolumes[containerPath] = {};
      }
    }

    const health = c.optBlock("healthcheck");
    const caps = c.optBlock("capabilities");
    const memory = c.optNumber("memory");
    const memorySwap = c.optNumber("memory_swap");
    const shmSize = c.optNumber("shm_size");
    const [first, ...others] = networks;
    const createBody = {
      Image: image,
      Hostname: c.optString("hostname") ?? "",
      Env: c.optStringList("env"),
      Cmd: command,
      Entrypoint: c.optStringList("entrypoint"),
      User: c.optString("user") ?? "",
      WorkingDir: c.optString("working_dir") ?? "",
      Tty: false,
      OpenStdin: false,
      ExposedPorts: Object.keys(exposedPorts).length > 0 ? exposedPorts : undefined,
      Volumes: Object.keys(anonymousVolumes).length > 0 ? anonymousVolumes : undefined,
      Labels: c.labels("labels"),
      StopSignal: c.optString("stop_signal"),
      StopTimeout: c.optNumber("stop_timeout"),
      Healthcheck: health
        ? {
            Test: health.stringList("test"),
            Interval: health.optDuration("interval") ?? 0,
            Timeout: health.optDuration("timeout") ?? 0,
            StartPeriod: health.optDuration("start_period") ?? 0,
            Retries: health.optNumber("retries") ?? 0,
          }
        : undefined,
      HostConfig: {
        Binds: binds.length > 0 ? binds : undefined,
        PortBindings: Object.keys(portBindings).length > 0 ? portBindings : undefined,
        RestartPolicy: { Name: c.optString("restart") ?? "no", MaximumRetryCount: c.optNumber("max_retry_count") ?? 0 },
        ReadonlyRootfs: c.optBool("read_only") ?? false,
        LogConfig: { Type: c.optString("log_driver") ?? "json-file", Config: c.optStringMap("log_opts") },
        Tmpfs: c.optStringMap("tmpfs"),
        CapAdd: caps?.optStringList("add"),
        CapDrop: caps?.optStringList("drop"),
        SecurityOpt: c.optStringList("security_opts"),
        Memory: memory !== undefined ? memory * 1024 * 1024 : undefined,
        MemorySwap: memorySwap !== undefined ? (memorySwap > 0 ? memorySwap * 1024 * 1024 : memorySwap) : undefined,
        ShmSize: shmSize !== undefined ? shmSize * 1024 * 1024 : undefined,
        Init: c.optBool("init") ?? false,
        // The provider creates on the default network, disconnects it and connects each
        // networks_advanced entry; creating on the first one directly ends in the same state.
        NetworkMode: networkMode ?? first.name,
      },
      NetworkingConfig: first ? { EndpointsConfig: { [first.name]: first.endpoint } } : undefined,
    };

    // Read every upload before creating anything, so a bad upload leaves no container behind.
    const uploads = c.blocks("upload").map((u, i) => this.readUpload(u, `${a} upload[${i}]`));

    const created = await this.api.call<{ Id: string }>({
      method: "POST",
      path: `/containers/create?name=${encodeURIComponent(name)}`,
      json: createBody,
    });
    const id = created.Id;
    this.record(res, id, false, { name, id });

    for (const n of others) {
      await this.api.call({
        method: "POST",
        path: `/networks/${encodeURIComponent(n.name)}/connect`,
        json: { Container: id, EndpointConfig: n.endpoint },
      });
    }

    for (const u of uploads) {
      // Exactly what the provider sends: a tar whose single entry is the full path, extracted at "/".
      await this.api
        .call({
          method: "PUT",
          path: `/containers/${id}/archive?path=%2F&noOverwriteDirNonDir=true`,
          body: singleFileTar(u.file, u.content, u.mode),
          contentType: "application/x-tar",
        })
        .catch((err: Error) => {
          throw new RealizeError(`${u.where} (${u.file}): Unable to upload volume content: ${err.message}`);
        });
    }

    if (c.optBool("start") === false) return;
    const startedAt = Date.now();
    await this.api.call({ method: "POST", path: `/containers/${id}/start` });

    const mustRun = c.optBool("must_run") ?? true;
    if (c.optBool("attach") === true) {
      if (c.optBool("wait") === true) throw new RealizeError(`${a}: wait together with attach is not implemented by the realizer`);
      // Like the provider: ContainerWait(not-running) with no bound of its own (bounded here),
      // then the read, which stores exit_code without judging it. A non-zero exit fails nothing.
      await this.api.call({ method: "POST", path: `/containers/${id}/wait?condition=not-running`, timeoutMs: ATTACH_TIMEOUT_MS });
      const info = await this.inspect(id);
      if (mustRun) {
        // The read finds it not running: the provider deletes it and fails.
        await this.api.call({ method: "DELETE", path: `/containers/${id}?force=1` });
        throw new RealizeError(`${a}: container failed to be in running state (attach with must_run: it exited, exit ${info.State.ExitCode}); the provider deletes it`);
      }
      this.state.set(res.address, { name, id, exit_code: String(info.State.ExitCode) });
      return;
    }
    const refreshMs = c.optNumber("container_read_refresh_timeout_milliseconds") ?? 15_000;
    if (mustRun) {
      // Like the provider (100 ms delay, then 'running' at the first look): a container that
      // crashes later than that passes here too, as it would pass `cdktf deploy`.
      await new Promise((r) => setTimeout(r, 100));
      await pollUntil(
        `${a} to be running`,
        async () => {
          const info = await this.inspect(id);
          if (info.State.Running) return true;
          if (Date.parse(info.State.FinishedAt) >= startedAt - 1000) {
            throw new RealizeError(
              `${a}: container exited immediately (exit ${info.State.ExitCode})\n${await this.api.logs(id)}`,
            );
          }
          return undefined;
        },
        { timeoutMs: refreshMs, intervalMs: 100 },
      );
    }

    if (c.optBool("wait") === true) {
      const waitSeconds = c.optNumber("wait_timeout") ?? 60;
      let last: ContainerInspect | undefined;
      try {
        await pollUntil(
          `${a} to become healthy`,
          async () => {
            last = await this.inspect(id);
            if (!last.State.Health) throw new RealizeError(`${a} wait: container has no healthcheck to wait for`);
            if (last.State.Health.Status === "healthy") return true;
            if (!last.State.Running) throw new RealizeError(`${a}: container stopped while waiting for health (${last.State.Status})`);
            return undefined;
          },
          { timeoutMs: waitSeconds * 1000, intervalMs: 500 },
        );
      } catch (err) {
        const probe = last?.State.Health?.Log?.slice(-1)[0];
        const detail = probe ? `\nlast probe (exit ${probe.ExitCode}): ${probe.Output.trim()}` : "";
        throw new RealizeError(`${(err as Error).message}${detail}\n${await this.api.logs(id)}`);
      }
    }
  }

  private readUpload(u: ConfigReader, where: string): { file: string; content: Buffer; mode: number; where: string } {
    const file = u.string("file");
    const content = u.optString("content");
    const contentBase64 = u.optString("content_base64");
    const source = u.optString("source");
    const given = [content, contentBase64, source].filter((v) => v !== undefined && v !== "").length;
    if (given !== 1) throw new RealizeError(`${where}: exactly one of content, content_base64 or source must be set`);
    let data: Buffer;
    if (content !== undefined && content !== "") {
      data = Buffer.from(content, "utf8");
    } else if (contentBase64 !== undefined && contentBase64 !== "") {
      data = decodeBase64(contentBase64, `${where}.content_base64`);
    } else {
      if (!u.optString("source_hash")) {
        throw new RealizeError(`${where}: source upload without source_hash: the provider would not notice when the file changes`);
      }
      data = readSource(this.plan.stackDir, source as string, `${where}.source`);
    }
    const permissions = u.optString("permissions");
    let mode: number;
    if (permissions !== undefined) {
      if (!/^0?[0-7]{3,4}$/.test(permissions)) throw new RealizeError(`${where}.permissions: not an octal mode: ${permissions}`);
      mode = parseInt(permissions, 8);
    } else {
      mode = u.optBool("executable") ? 0o744 : 0o644;
    }
    return { file, content: data, mode, where };
  }

  private createLocalFile(res: PlannedResource): void {
    const c = new ConfigReader(res, (s, w) => this.resolve(s, w));
    const a = res.address;
    const filename = c.string("filename");
    const content = c.optString("content");
    const contentBase64 = c.optString("content_base64");
    const source = c.optString("source");
    if ([content, contentBase64, source].filter((v) => v !== undefined).length !== 1) {
      throw new RealizeError(`${a}: exactly one of content, content_base64 or source must be set`);
    }
    const data =
      content !== undefined
        ? Buffer.from(content, "utf8")
        : contentBase64 !== undefined
          ? decodeBase64(contentBase64, `${a} content_base64`)
          : readSource(this.plan.stackDir, source as string, `${a} source`);
    const defaultMode = res.type === "local_sensitive_file" ? "0700" : "0777";
    const fileMode = parseMode(c.optString("file_permission") ?? defaultMode, `${a} file_permission`);
    const dirMode = parseMode(c.optString("directory_permission") ?? defaultMode, `${a} directory_permission`);
    const target = path.resolve(this.plan.stackDir, filename);
    // Like the local provider (Go's MkdirAll/WriteFile): modes are filtered by the umask.
    fs.mkdirSync(path.dirname(target), { recursive: true, mode: dirMode });
    fs.rmSync(target, { force: true });
    fs.writeFileSync(target, data, { mode: fileMode });
    this.record(res, target, false, {
      filename,
      id: crypto.createHash("sha1").update(data).digest("hex"),
      content_sha256: crypto.createHash("sha256").update(data).digest("hex"),
    });
  }

  /** terraform_data: like Terraform, `self` of the provisioners is the resource's state. */
  private readonly dataSelf = new Map<string, TerraformDataSelf>();

  private async createTerraformData(res: PlannedResource): Promise<void> {
    const self = terraformDataState(res);
    this.record(res, self.id, false, { id: self.id });
    this.dataSelf.set(res.address, self);
    await runProvisioners(res, "create", self, this.plan.stackDir, this.log);
  }

  private record(res: PlannedResource, id: string, reused: boolean, attrs: Record<string, string>): void {
    this.created.push({ address: res.address, type: res.type, id, reused });
    this.state.set(res.address, attrs);
  }

  private inspect(id: string): Promise<ContainerInspect> {
    return this.api.call<ContainerInspect>({ method: "GET", path: `/containers/${id}/json` });
  }

  private async destroyOne(res: CreatedResource, options: DestroyOptions): Promise<void> {
    const ignore404 = (err: unknown) => {
      if (!(err instanceof DockerApiError && err.status === 404)) throw err;
    };
    switch (res.type) {
      case "docker_container": {
        const planned = this.plan.resources.find((r) => r.address === res.address);
        const grace = planned?.config["destroy_grace_seconds"];
        if (typeof grace === "number" && grace > 0) {
          await this.api
            .call({ method: "POST", path: `/containers/${res.id}/stop?t=${grace}`, timeoutMs: (grace + 30) * 1000 })
            .catch(ignore404);
        }
        const removeVolumes = planned?.config["remove_volumes"] !== false;
        await this.api
          .call({ method: "DELETE", path: `/containers/${res.id}?force=1&v=${removeVolumes ? 1 : 0}` })
          .catch(ignore404);
        break;
      }
      case "docker_network":
        await this.api.call({ method: "DELETE", path: `/networks/${res.id}` }).catch(ignore404);
        break;
      case "docker_volume":
        if (!options.keepVolumes) {
          await this.api.call({ method: "DELETE", path: `/volumes/${encodeURIComponent(res.id)}` }).catch(ignore404);
        }
        break;
      case "docker_image":
        break;
      case "local_file":
      case "local_sensitive_file":
        fs.rmSync(res.id, { force: true });
        break;
      case "terraform_data": {
        const self = this.dataSelf.get(res.address);
        const planned = this.plan.resources.find((r) => r.address === res.address);
        if (self && planned) await runProvisioners(planned, "destroy", self, this.plan.stackDir, this.log);
        break;
      }
    }
  }
}

/**
 * Validates the whole stack, then creates it. If creation fails part-way, what was created is
 * destroyed again (volumes that already existed are kept) and the error is rethrown.
 */
export async function realize(cdkTfJsonPath: string, options: RealizeOptions): Promise<Realization> {
  const plan = planStack(cdkTfJsonPath);
  const realization = new Realization(plan, options.api, options.log);
  try {
    await realization.apply();
  } catch (err) {
    const reused = realization.created.filter((r) => r.reused);
    try {
      // Only volumes created just now are removed on rollback.
      await destroyExcept(realization, reused);
    } catch (cleanupErr) {
      throw new RealizeError(`${(err as Error).message}\n(rollback also failed: ${(cleanupErr as Error).message})`);
    }
    throw err;
  }
  return realization;
}

async function destroyExcept(realization: Realization, keep: CreatedResource[]): Promise<void> {
  for (const r of keep) realization.created.splice(realization.created.indexOf(r), 1);
  await realization.destroy();
}

/** Realizes the stack, runs fn, and always tears down (also when fn throws). */
export async function withRealized<T>(
  cdkTfJsonPath: string,
  options: RealizeOptions & DestroyOptions,
  fn: (realization: Realization) => Promise<T>,
): Promise<T> {
  const realization = await realize(cdkTfJsonPath, options);
  let result: T;
  try {
    result = await fn(realization);
  } catch (err) {
    await realization.destroy({ keepVolumes: options.keepVolumes }).catch((cleanupErr: Error) => {
      options.log?.(`teardown after failure also failed: ${cleanupErr.message}`);
    });
    throw err;
  }
  await realization.destroy({ keepVolumes: options.keepVolumes });
  return result;
}

// ---------------------------------------------------------------------------------------------
// Typed access to a validated configuration, resolving ${…} in every string

class ConfigReader {
  constructor(
    private readonly res: PlannedResource,
    private readonly resolveString: (s: string, where: string) => string,
    private readonly obj: JsonObject = res.config,
    private readonly prefix = "",
  ) {}

  private where(key: string): string {
    return `${this.res.address} ${this.prefix}${key}`;
  }

  optString(key: string): string | undefined {
    const v = this.obj[key];
    return typeof v === "string" ? this.resolveString(v, this.where(key)) : undefined;
  }

  string(key: string): string {
    const v = this.optString(key);
    if (v === undefined) throw new RealizeError(`${this.where(key)}: missing`);
    return v;
  }

  optNumber(key: string): number | undefined {
    const v = this.obj[key];
    return typeof v === "number" ? v : undefined;
  }

  number(key: string): number {
    const v = this.optNumber(key);
    if (v === undefined) throw new RealizeError(`${this.where(key)}: missing`);
    return v;
  }

  optBool(key: string): boolean | undefined {
    const v = this.obj[key];
    return typeof v === "boolean" ? v : undefined;
  }

  optStringList(key: string): string[] | undefined {
    const v = this.obj[key];
    if (!Array.isArray(v)) return undefined;
    return v.map((item, i) => this.resolveString(item as string, `${this.where(key)}[${i}]`));
  }

  stringList(key: string): string[] {
    const v = this.optStringList(key);
    if (v === undefined) throw new RealizeError(`${this.where(key)}: missing`);
    return v;
  }

  optStringMap(key: string): Record<string, string> | undefined {
    const v = this.obj[key];
    if (!isObject(v)) return undefined;
    return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, this.resolveString(item as string, `${this.where(key)}.${k}`)]));
  }

  /** Go duration ("1m30s", "500ms") in nanoseconds, as the Engine API wants. */
  optDuration(key: string): number | undefined {
    const v = this.optString(key);
    return v === undefined ? undefined : parseGoDuration(v, this.where(key));
  }

  labels(key: string): Record<string, string> {
    return Object.fromEntries(this.blocks(key).map((b) => [b.string("label"), b.string("value")]));
  }

  blocks(key: string): ConfigReader[] {
    const v = this.obj[key];
    if (v === undefined) return [];
    const items = Array.isArray(v) ? v : [v];
    return items.map((item, i) => new ConfigReader(this.res, this.resolveString, item as JsonObject, `${this.prefix}${key}[${i}].`));
  }

  optBlock(key: string): ConfigReader | undefined {
    return this.blocks(key)[0];
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function asArray(v: Json, where: string): Json[] {
  if (!Array.isArray(v)) throw new RealizeError(`${where}: expected a list`);
  return v;
}

function shorten(s: string): string {
  return JSON.stringify(s.length > 80 ? s.slice(0, 77) + "..." : s);
}

function decodeBase64(s: string, where: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw new RealizeError(`${where}: not valid base64`);
  return Buffer.from(s, "base64");
}

function readSource(stackDir: string, source: string, where: string): Buffer {
  // Terraform runs in the stack's output directory, so relative paths (cdktf assets) start there.
  const file = path.resolve(stackDir, source);
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new RealizeError(`${where}: could not read file ${file}: ${(err as Error).message}`);
  }
}

function parseMode(mode: string, where: string): number {
  if (!/^0?[0-7]{3,4}$/.test(mode)) throw new RealizeError(`${where}: not an octal mode: ${mode}`);
  return parseInt(mode, 8);
}

const DURATION_UNITS: Record<string, number> = { ns: 1, us: 1e3, "µs": 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

export function parseGoDuration(s: string, where: string): number {
  if (s === "0") return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += parseFloat(m[1]) * DURATION_UNITS[m[2]];
    matched = re.lastIndex;
  }
  if (s.length === 0 || matched !== s.length) throw new RealizeError(`${where}: not a Go duration: ${JSON.stringify(s)}`);
  return Math.round(total);
}

// ---------------------------------------------------------------------------------------------
// terraform_data with local-exec provisioners, and `removed` blocks
//
// What Terraform 1.11 does, and the realizer with it: on create, terraform_data stores `input`
// (also as `output`) and `triggers_replace` in its state, then runs the create-time provisioners;
// if one fails the resource is tainted, and a tainted resource's destroy-time provisioners never
// run. On destroy the `when = destroy` provisioners run first; in them `self` is the resource's
// state. local-exec runs `/bin/sh -c <command>` in `working_dir` (relative to Terraform's working
// directory, the stack dir), with `environment` added to Terraform's own environment.
// Supported in provisioner strings: literal text, `$${`, `${self.<attr>}` and
// `${jsonencode(self.<attr>)}`; anything else is refused at plan time.

export interface LocalExec {
  when: "create" | "destroy";
  command: string;
  workingDir?: string;
  environment: Record<string, string>;
}

interface TerraformDataSelf {
  id: string;
  attributes: Record<string, Json>;
  tainted: boolean;
}

const LOCAL_EXEC_KEYS = new Set(["command", "working_dir", "environment", "when", "on_failure"]);
const SELF_ATTRIBUTES = new Set(["id", "input", "output", "triggers_replace"]);
const PROVISIONER_TIMEOUT_MS = 120_000;

function parseProvisioners(value: Json, address: string): LocalExec[] {
  const items = Array.isArray(value) ? value : [value];
  return items.map((item, i) => {
    const where = `${address} provisioner[${i}]`;
    if (!isObject(item) || Object.keys(item).length !== 1) throw new RealizeError(`${where}: expected one provisioner block`);
    const [kind, body] = Object.entries(item)[0];
    if (kind !== "local-exec") throw new RealizeError(`${where}: provisioner "${kind}" is not supported by the realizer (only local-exec)`);
    if (!isObject(body)) throw new RealizeError(`${where}: not an object`);
    for (const key of Object.keys(body)) {
      if (!LOCAL_EXEC_KEYS.has(key)) throw new RealizeError(`${where}: local-exec argument "${key}" is not supported by the realizer`);
    }
    const command = body["command"];
    if (typeof command !== "string" || command === "") throw new RealizeError(`${where}: local-exec needs a command`);
    const when = body["when"] ?? "create";
    if (when !== "create" && when !== "destroy") throw new RealizeError(`${where}: when must be "create" or "destroy", got ${JSON.stringify(when)}`);
    if (body["on_failure"] !== undefined && body["on_failure"] !== "fail") {
      throw new RealizeError(`${where}: only on_failure = "fail" (the default) is supported by the realizer`);
    }
    const workingDir = body["working_dir"];
    if (workingDir !== undefined && typeof workingDir !== "string") throw new RealizeError(`${where}: working_dir must be a string`);
    const environment = body["environment"] ?? {};
    if (!isObject(environment) || !Object.values(environment).every((v) => typeof v === "string")) {
      throw new RealizeError(`${where}: environment must be a map of strings`);
    }
    const strings = [command, ...(workingDir === undefined ? [] : [workingDir]), ...(Object.values(environment) as string[])];
    for (const text of strings) interpolateSelf(text, undefined, where);
    return { when, command, workingDir, environment: environment as Record<string, string> };
  });
}

/** Resolves `${self.x}` / `${jsonencode(self.x)}`; with self undefined only checks the syntax. */
function interpolateSelf(text: string, self: TerraformDataSelf | undefined, where: string): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    if (text.startsWith("$${", i) || text.startsWith("%%{", i)) {
      out += text.slice(i + 1, i + 3);
      i += 3;
    } else if (text.startsWith("%{", i)) {
      throw new RealizeError(`${where}: template directives are not supported by the realizer: ${shorten(text)}`);
    } else if (text.startsWith("${", i)) {
      const end = text.indexOf("}", i + 2);
      if (end < 0) throw new RealizeError(`${where}: unterminated \${ in ${shorten(text)}`);
      const expr = text.slice(i + 2, end).trim();
      const m = /^(?:jsonencode\(\s*self\.([a-z_]+)\s*\)|self\.([a-z_]+))$/.exec(expr);
      const attribute = m?.[1] ?? m?.[2];
      if (!m || attribute === undefined || !SELF_ATTRIBUTES.has(attribute)) {
        throw new RealizeError(
          `${where}: unsupported expression \${${expr}} (the realizer resolves only self.<attr> and jsonencode(self.<attr>) ` +
            `with attr one of ${[...SELF_ATTRIBUTES].join(", ")})`,
        );
      }
      if (self) {
        const value = attribute === "id" ? self.id : (self.attributes[attribute] ?? null);
        if (m[1] !== undefined) out += terraformJsonEncode(value);
        else if (typeof value === "string") out += value;
        else throw new RealizeError(`${where}: self.${attribute} is not a string; use jsonencode(self.${attribute})`);
      }
      i = end + 1;
    } else {
      out += text[i];
      i += 1;
    }
  }
  return out;
}

/** Terraform's jsonencode: object keys sorted, no spaces, <, >, &, U+2028 and U+2029 escaped. */
export function terraformJsonEncode(value: Json): string {
  const sorted = (v: Json): Json =>
    Array.isArray(v) ? v.map(sorted) : isObject(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v;
  return JSON.stringify(sorted(value)).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function checkJsonLiteral(value: Json, address: string, where: string): void {
  if (typeof value === "string" && (value.includes("${") || value.includes("%{"))) {
    throw new RealizeError(`${address} ${where}: expressions are not supported by the realizer in terraform_data values: ${shorten(value)}`);
  }
  if (Array.isArray(value)) value.forEach((v, i) => checkJsonLiteral(v, address, `${where}[${i}]`));
  else if (isObject(value)) for (const [k, v] of Object.entries(value)) checkJsonLiteral(v, address, `${where}.${k}`);
}

/**
 * `removed { from = <address>, lifecycle { destroy = false } }` makes Terraform forget a resource
 * that is in its state; a realization always starts from an empty state, so there is nothing to
 * do beyond checking the block.
 */
function checkTopLevelBlock(key: string, value: Json | undefined, file: string): void {
  const items = Array.isArray(value) ? value : [value ?? null];
  items.forEach((item, i) => {
    const where = `${file}: ${key}[${i}]`;
    if (!isObject(item) || typeof item["from"] !== "string" || !/^[a-z_]+\.[A-Za-z0-9_-]+$/.test(item["from"])) {
      throw new RealizeError(`${where}: expected { from = <type>.<name>, ... }`);
    }
    const lifecycle = item["lifecycle"];
    if (!isObject(lifecycle) || lifecycle["destroy"] !== false || Object.keys(item).some((k) => k !== "from" && k !== "lifecycle")) {
      throw new RealizeError(`${where}: only removed blocks with lifecycle { destroy = false } are supported by the realizer`);
    }
  });
}

function terraformDataState(res: PlannedResource): TerraformDataSelf {
  const input = res.config["input"] ?? null;
  return {
    id: crypto.randomUUID(),
    attributes: { input, output: input, triggers_replace: res.config["triggers_replace"] ?? null },
    tainted: false,
  };
}

async function runProvisioners(
  res: PlannedResource,
  when: "create" | "destroy",
  self: TerraformDataSelf,
  stackDir: string,
  log: (line: string) => void,
): Promise<void> {
  if (when === "destroy" && self.tainted) {
    log(`${res.address}: tainted by a failed create-time provisioner; destroy-time provisioners skipped (as Terraform does)`);
    return;
  }
  for (const [i, p] of res.provisioners.entries()) {
    if (p.when !== when) continue;
    const where = `${res.address} provisioner[${i}]`;
    const command = interpolateSelf(p.command, self, `${where} command`);
    const cwd = path.resolve(stackDir, p.workingDir === undefined ? "." : interpolateSelf(p.workingDir, self, `${where} working_dir`));
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [k, v] of Object.entries(p.environment)) env[k] = interpolateSelf(v, self, `${where} environment.${k}`);
    log(`${res.address} (local-exec, ${when}): Executing: ["/bin/sh" "-c" ${JSON.stringify(command)}]`);
    try {
      const out = await run("/bin/sh", ["-c", command], { cwd, env, timeoutMs: PROVISIONER_TIMEOUT_MS });
      for (const line of `${out.stdout}${out.stderr}`.split("\n").filter((l) => l.trim() !== "")) log(`${res.address} (local-exec): ${line}`);
    } catch (err) {
      if (when === "create") self.tainted = true;
      const detail = err instanceof CommandError ? `${err.message}\n${err.stdout}${err.stderr}` : (err as Error).message;
      throw new RealizeError(`${where} (local-exec, ${when}): ${detail.trim()}`);
    }
  }
}
