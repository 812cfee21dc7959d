import * as fs from "fs";

/**
 * How much CPU the rest of the machine used while the bench measured: busy time from
 * /proc/stat minus the CPU time of the bench's own processes (this process and its children,
 * the bench's dockerd and its children, and every process in one of the bench's containers).
 * The bench shares a small machine with whatever else runs there (another e2e suite, npm ci…);
 * this figure says how disturbed a repetition was, so a disturbed run is visible in the report.
 * Interrupt time is left out on both sides; approximate by design.
 */

const CLK_TCK = 100;

export interface CpuSample {
  readonly atMs: number;
  /** user+nice+system+steal jiffies of all CPUs. */
  readonly busy: number;
  /** utime+stime+cutime+cstime jiffies of the bench's processes. */
  readonly mine: number;
}

interface ProcStat {
  ppid: number;
  jiffies: number;
}

function readProc(pid: string): ProcStat | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    const f = (n: number) => Number(rest[n - 3]);
    return { ppid: f(4), jiffies: f(14) + f(15) + f(16) + f(17) };
  } catch {
    return undefined;
  }
}

function inContainer(pid: string, ids: readonly string[]): boolean {
  if (ids.length === 0) return false;
  try {
    const cg = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8");
    return ids.some((id) => cg.includes(id));
  } catch {
    return false;
  }
}

export class CpuMeter {
  constructor(
    private readonly roots: () => number[],
    private readonly containerIds: () => string[],
  ) {}

  sample(): CpuSample {
    const atMs = Date.now();
    const cpu = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const busy = cpu[0] + cpu[1] + cpu[2] + cpu[7];
    const procs = new Map<number, ProcStat>();
    for (const entry of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const p = readProc(entry);
      if (p) procs.set(Number(entry), p);
    }
    const roots = new Set(this.roots());
    const ids = this.containerIds();
    const memo = new Map<number, boolean>();
    const isMine = (pid: number): boolean => {
      const known = memo.get(pid);
      if (known !== undefined) return known;
      let result = false;
      if (roots.has(pid)) result = true;
      else {
        const p = procs.get(pid);
        if (p && p.ppid > 1 && p.ppid !== pid) result = isMine(p.ppid);
        if (!result && p) result = inContainer(String(pid), ids);
      }
      memo.set(pid, result);
      return result;
    };
    let mine = 0;
    for (const [pid, p] of procs) if (isMine(pid)) mine += p.jiffies;
    return { atMs, busy, mine };
  }

  /** CPU cores the rest of the machine kept busy on average between two samples. */
  static backgroundCores(a: CpuSample, b: CpuSample): number {
    const seconds = (b.atMs - a.atMs) / 1000;
    if (seconds <= 0) return 0;
    return Math.max(0, (b.busy - a.busy - (b.mine - a.mine)) / CLK_TCK / seconds);
  }
}

export const QUIET_THRESHOLD_CORES = 0.3;

/**
 * Waits (bounded) until the rest of the machine uses less than `threshold` cores over a
 * one-second window. Returns the last window's background and how long it waited.
 */
export async function waitQuiet(meter: CpuMeter, maxMs: number, threshold = QUIET_THRESHOLD_CORES): Promise<{ background: number; waitedMs: number }> {
  const started = Date.now();
  for (let i = 0; i < Math.ceil(maxMs / 1000) + 1; i++) {
    const a = meter.sample();
    await new Promise((r) => setTimeout(r, 1000));
    const background = CpuMeter.backgroundCores(a, meter.sample());
    if (background < threshold || Date.now() - started >= maxMs) return { background, waitedMs: Date.now() - started };
  }
  return { background: NaN, waitedMs: Date.now() - started };
}
