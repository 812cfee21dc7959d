import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { passwordEnvName } from "../config/load-config";
import { Log } from "./lab";
import { run } from "./proc";
import { CpuMeter } from "./cpu";
import { medianOf, repeat, RepeatResult } from "./reps";
import { Budget } from "./stats";

export const USER_COUNTS = [1, 10, 100] as const;
export type UserCount = (typeof USER_COUNTS)[number];
const SYNTH_TIMEOUT_MS = 120_000;
/** What one re-synth repetition (three counts and the type-checked synth) and the seeding need at least; the cold loop leaves it. */
const RESYNTH_RESERVE_MS = 90_000;
/** What `cdktf synth` needs from the project; copied so the bench never touches the project's own material or cdktf.out. */
const PROJECT_ENTRIES = ["main.ts", "cdktf.json", "tsconfig.json", "config", "constructs", "stacks", "material", "renderers", "ui"];

/** The app as it ran before cdktf.json skipped the type check (commit 274e225): ts-node type-checks every file. */
export const TYPECHECKED_APP = "npx ts-node main.ts";

export interface SynthBenchResult {
  readonly coldS: number[];
  readonly resynthS: Record<UserCount, number[]>;
  /** `npx cdktf synth --app "npx ts-node main.ts"`: the same re-synth with the app type-checked at run time, 1 user. */
  readonly typecheckedS: number[];
  /** The `app` of the project's cdktf.json (what `cdktf synth` runs as shipped). */
  readonly shippedApp: string;
  /** The seeding synth that hashed 99 new users at cost 10 (context). */
  readonly seed100S: number;
  readonly coldMedianS: number;
  readonly resynthMedianS: Record<UserCount, number>;
  readonly typecheckedMedianS: number;
  readonly checks: string[];
  readonly background: { cold: RepeatResult; resynth: RepeatResult };
}

/**
 * Times what users run, `npx cdktf synth`, in a scratch copy of the project in the temp
 * directory (its node_modules linked to the project's): cold (fresh material directory: CA and server keys, http secret, bcrypt) and
 * re-synth with 1, 10 and 100 unchanged users (passwords from REGISTRY_PASSWORD_<USER>), and the
 * 1-user re-synth with the app type-checked at run time, side by side.
 */
export async function runSynthBench(
  projectDir: string,
  opts: { minClean: number; maxReps: number; budget: Budget; reserveMs: number; log: Log },
): Promise<SynthBenchResult> {
  const log = opts.log;
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "rsbench-synth-"));
  const cleanup = () => fs.rmSync(scratch, { recursive: true, force: true });
  process.once("exit", cleanup);
  try {
    for (const entry of PROJECT_ENTRIES) fs.cpSync(path.join(projectDir, entry), path.join(scratch, entry), { recursive: true });
    // The project's own dependencies: npx finds cdktf and ts-node through this link, as in the project.
    fs.symlinkSync(path.join(projectDir, "node_modules"), path.join(scratch, "node_modules"), "dir");
    const users = Array.from({ length: 100 }, (_, i) => `user${String(i + 1).padStart(3, "0")}`);
    const passwords = Object.fromEntries(users.map((u) => [passwordEnvName(u), crypto.randomBytes(18).toString("base64url")]));
    const env = { ...process.env, CHECKPOINT_DISABLE: "1", ...passwords };
    const writeConfig = (name: string, count: number, material: string) => {
      const file = path.join(scratch, `${name}.yml`);
      const lines = [
        "namePrefix: bench",
        "publishAddress: 127.0.0.1",
        `materialDirectory: ${material}`,
        `clientConfigDirectory: client-${name}`,
        "users:",
        ...users.slice(0, count).map((u) => `  - name: ${u}`),
      ];
      fs.writeFileSync(file, lines.join("\n") + "\n");
      return file;
    };
    const shippedApp = (JSON.parse(fs.readFileSync(path.join(scratch, "cdktf.json"), "utf8")) as { app: string }).app;
    const synth = async (config: string, out: string, app?: string): Promise<number> => {
      const { seconds } = await run("npx", ["cdktf", "synth", ...(app ? ["--app", app] : []), "--output", out], {
        cwd: scratch,
        env: { ...env, REGISTRY_STACK_CONFIG: config },
        timeoutMs: SYNTH_TIMEOUT_MS,
      });
      return seconds;
    };
    const stackJsonHash = (out: string) =>
      crypto.createHash("sha256").update(fs.readFileSync(path.join(scratch, out, "stacks", "registry", "cdk.tf.json"))).digest("hex");
    const checks: string[] = [];

    const configs = {} as Record<UserCount, string>;
    for (const n of USER_COUNTS) configs[n] = writeConfig(`users-${n}`, n, `material-${n}`);

    const meter = new CpuMeter(() => [process.pid], () => []);
    const rep = (what: string, minClean: number, maxReps: number, reserveMs: number) => ({
      what,
      minClean,
      maxReps,
      budget: opts.budget,
      reserveMs,
      meter,
      quietWaitMs: 10_000,
      log,
    });

    // Cold: a fresh material (and output) directory every time; the last one seeds the 1-user re-synth.
    const coldS: number[] = [];
    const coldReps = await repeat(rep("cold synth", opts.minClean, opts.maxReps, opts.reserveMs + RESYNTH_RESERVE_MS), async (i) => {
      fs.rmSync(path.join(scratch, "material-1"), { recursive: true, force: true });
      fs.rmSync(path.join(scratch, "out-1"), { recursive: true, force: true });
      coldS.push(await synth(configs[1], "out-1"));
      log(`cold synth ${i + 1}: ${coldS[i].toFixed(2)} s`);
    });

    // Re-synth: seed the 10- and 100-user material once (not counted), then interleave the counts.
    const seedHash = { 1: stackJsonHash("out-1") } as Record<UserCount, string>;
    let seed100S = NaN;
    for (const n of [10, 100] as const) {
      const s = await synth(configs[n], `out-${n}`);
      if (n === 100) seed100S = s;
      seedHash[n] = stackJsonHash(`out-${n}`);
      log(`seed synth with ${n} users (hashes them at cost 10): ${s.toFixed(2)} s`);
    }
    const resynthS = { 1: [], 10: [], 100: [] } as Record<UserCount, number[]>;
    const typecheckedS: number[] = [];
    // Each repetition: the three user counts and the type-checked 1-user synth, in rotating order.
    const items = [...USER_COUNTS, "typechecked"] as const;
    let changed = 0;
    let typecheckedDiffers = 0;
    const resynthReps = await repeat(rep("re-synth", opts.minClean, opts.maxReps, opts.reserveMs), async (r) => {
      for (let i = 0; i < items.length; i++) {
        const item = items[(i + r) % items.length];
        if (item === "typechecked") {
          typecheckedS.push(await synth(configs[1], "out-typechecked", TYPECHECKED_APP));
          if (stackJsonHash("out-typechecked") !== seedHash[1]) typecheckedDiffers++;
          continue;
        }
        resynthS[item].push(await synth(configs[item], `out-${item}`));
        if (stackJsonHash(`out-${item}`) !== seedHash[item]) changed++;
      }
      log(`re-synth rep ${r + 1}: ${USER_COUNTS.map((n) => `${n} user(s) ${resynthS[n][r].toFixed(2)} s`).join(", ")}, type-checked ${typecheckedS[r].toFixed(2)} s`);
    });
    if (changed > 0) throw new Error(`re-synth with unchanged users changed cdk.tf.json ${changed} time(s): the figures would include re-hashing`);
    if (typecheckedDiffers > 0) throw new Error(`the type-checked synth wrote a different cdk.tf.json ${typecheckedDiffers} time(s): the two would not be the same work`);
    checks.push("every re-synth produced a byte-identical cdk.tf.json (unchanged users were not re-hashed)");
    checks.push(`the type-checked synth (\`--app "${TYPECHECKED_APP}"\`) wrote the same cdk.tf.json as the shipped one (\`${shippedApp}\`)`);

    return {
      coldS,
      resynthS,
      typecheckedS,
      shippedApp,
      seed100S,
      coldMedianS: medianOf(coldS, coldReps.used),
      resynthMedianS: { 1: medianOf(resynthS[1], resynthReps.used), 10: medianOf(resynthS[10], resynthReps.used), 100: medianOf(resynthS[100], resynthReps.used) },
      typecheckedMedianS: medianOf(typecheckedS, resynthReps.used),
      background: { cold: coldReps, resynth: resynthReps },
      checks,
    };
  } finally {
    cleanup();
    process.removeListener("exit", cleanup);
  }
}
