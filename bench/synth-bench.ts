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
/** What `cdktf synth` needs from the project; copied so the bench never touches the project's own material or cdktf.out. */
const PROJECT_ENTRIES = ["main.ts", "cdktf.json", "tsconfig.json", "config", "constructs", "stacks", "material", "renderers"];

export interface SynthBenchResult {
  readonly coldS: number[];
  readonly resynthS: Record<UserCount, number[]>;
  /** `npx ts-node main.ts` alone (the app without the CLI), 1 user, unchanged. */
  readonly appS: number[];
  /** `npx ts-node --transpile-only main.ts` (no type check), 1 user, unchanged. */
  readonly appTranspileOnlyS: number[];
  /** The seeding synth that hashed 99 new users at cost 10 (context). */
  readonly seed100S: number;
  readonly coldMedianS: number;
  readonly resynthMedianS: Record<UserCount, number>;
  readonly appMedianS: number;
  readonly appTranspileOnlyMedianS: number;
  readonly checks: string[];
  readonly background: { cold: RepeatResult; resynth: RepeatResult; app: RepeatResult };
}

/**
 * Times what users run, `npx cdktf synth`, in a scratch copy of the project in the temp
 * directory (its node_modules linked to the project's): cold (fresh material directory: CA and server keys, http secret, bcrypt) and
 * re-synth with 1, 10 and 100 unchanged users (passwords from REGISTRY_PASSWORD_<USER>).
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
    const synth = async (config: string, out: string): Promise<number> => {
      const { seconds } = await run("npx", ["cdktf", "synth", "--output", out], {
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
    const rep = (what: string, minClean: number, maxReps: number) => ({
      what,
      minClean,
      maxReps,
      budget: opts.budget,
      reserveMs: opts.reserveMs,
      meter,
      quietWaitMs: 10_000,
      log,
    });

    // Cold: a fresh material (and output) directory every time; the last one seeds the 1-user re-synth.
    const coldS: number[] = [];
    const coldReps = await repeat(rep("cold synth", opts.minClean, opts.maxReps), async (i) => {
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
    let changed = 0;
    const resynthReps = await repeat(rep("re-synth", opts.minClean, opts.maxReps), async (r) => {
      for (let i = 0; i < USER_COUNTS.length; i++) {
        const n = USER_COUNTS[(i + r) % USER_COUNTS.length];
        resynthS[n].push(await synth(configs[n], `out-${n}`));
        if (stackJsonHash(`out-${n}`) !== seedHash[n]) changed++;
      }
      log(`re-synth rep ${r + 1}: ${USER_COUNTS.map((n) => `${n} user(s) ${resynthS[n][r].toFixed(2)} s`).join(", ")}`);
    });
    if (changed > 0) throw new Error(`re-synth with unchanged users changed cdk.tf.json ${changed} time(s): the figures would include re-hashing`);
    checks.push("every re-synth produced a byte-identical cdk.tf.json (unchanged users were not re-hashed)");

    // Breakdown (context): the app alone, with and without ts-node's type check.
    const appS: number[] = [];
    const appTranspileOnlyS: number[] = [];
    const appReps = await repeat(rep("app alone", opts.minClean, opts.minClean), async (r) => {
      for (const [args, into] of [
        [["ts-node", "main.ts"], appS],
        [["ts-node", "--transpile-only", "main.ts"], appTranspileOnlyS],
      ] as const) {
        const { seconds } = await run("npx", args, {
          cwd: scratch,
          env: { ...env, REGISTRY_STACK_CONFIG: configs[1], CDKTF_OUTDIR: path.join(scratch, "out-app") },
          timeoutMs: SYNTH_TIMEOUT_MS,
        });
        into.push(seconds);
      }
      log(`app alone rep ${r + 1}: ts-node ${appS[r].toFixed(2)} s, ts-node --transpile-only ${appTranspileOnlyS[r].toFixed(2)} s`);
    });

    return {
      coldS,
      resynthS,
      appS,
      appTranspileOnlyS,
      seed100S,
      coldMedianS: medianOf(coldS, coldReps.used),
      resynthMedianS: { 1: medianOf(resynthS[1], resynthReps.used), 10: medianOf(resynthS[10], resynthReps.used), 100: medianOf(resynthS[100], resynthReps.used) },
      appMedianS: medianOf(appS, appReps.used),
      appTranspileOnlyMedianS: medianOf(appTranspileOnlyS, appReps.used),
      background: { cold: coldReps, resynth: resynthReps, app: appReps },
      checks,
    };
  } finally {
    cleanup();
    process.removeListener("exit", cleanup);
  }
}
