import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';

/** Files of a {@link FakeTree}: path relative to its root -> contents. The builders below write the ones Linux has. */
export type TreeFiles = Record<string, string>;

/** A fake `/proc` (under `proc/`) and cgroup tree (under `cgroup/`) in a temp dir, for the CPU and memory readers. */
export interface FakeTree extends AsyncDisposable {
  readonly procRoot: string;
  readonly cgroupRoot: string;
  /** Writes (or overwrites) files; later parts win. */
  write(...parts: TreeFiles[]): Promise<void>;
}

/**
 * Creates a {@link FakeTree} holding the files of every part; `await using` removes it.
 *
 * @example
 * await using t = await fakeTree(procSelfCgroup('0::/'), procStat({ user: 1, idle: 1 }));
 */
export async function fakeTree(...parts: TreeFiles[]): Promise<FakeTree> {
  const root = await mkdtemp(join(tmpdir(), 'guard-playbooks-tree-'));
  const write = async (...more: TreeFiles[]): Promise<void> => {
    for (const [path, text] of Object.entries(Object.assign({}, ...more) as TreeFiles)) {
      await mkdir(join(root, path, '..'), { recursive: true });
      await writeFile(join(root, path), text);
    }
  };
  await write(...parts);
  return { procRoot: join(root, 'proc'), cgroupRoot: join(root, 'cgroup'), write, [Symbol.asyncDispose]: () => rm(root, { recursive: true, force: true }) };
}

/** `/proc/self/cgroup`, a line per hierarchy: `0::/path` (v2) or `N:controller[,controller]:/path` (v1). */
export function procSelfCgroup(...lines: string[]): TreeFiles {
  return { 'proc/self/cgroup': lines.map((line) => `${line}\n`).join('') };
}

/** `/proc/stat` with its aggregate `cpu` line in USER_HZ ticks, the fields not named zero (busy: user + system; idle: idle + iowait). */
export function procStat(ticks: { user?: number; system?: number; idle?: number; iowait?: number }): TreeFiles {
  const { user = 0, system = 0, idle = 0, iowait = 0 } = ticks;
  return { 'proc/stat': `cpu  ${user} 0 ${system} ${idle} ${iowait} 0 0 0 0 0\n` };
}

/** The files named under `cgroup/<dir>` (`dir` '' is the cgroup root), each a value on a line; undefined ones are left out. */
function cgroupFiles(dir: string, values: Record<string, string | number | bigint | undefined>): TreeFiles {
  const files: TreeFiles = {};
  for (const [name, value] of Object.entries(values)) if (value !== undefined) files[posix.join('cgroup', dir, name)] = `${value}\n`;
  return files;
}

/** cgroup v2 CPU files: `cpu.max` (a quota in cores over a 100 ms period, or `'max'` for none) and `cpu.stat`'s `usage_usec`. */
export function cgroupV2Cpu(dir: string, files: { quotaCores?: number | 'max'; usageUsec?: number }): TreeFiles {
  const { quotaCores, usageUsec } = files;
  return cgroupFiles(dir, {
    'cpu.max': quotaCores === undefined ? undefined : `${quotaCores === 'max' ? 'max' : quotaCores * 100_000} 100000`,
    'cpu.stat': usageUsec === undefined ? undefined : `usage_usec ${usageUsec}`,
  });
}

/** cgroup v1 CPU files: the CFS quota and period (µs; a quota of -1 is none) and `cpuacct.usage` (ns). */
export function cgroupV1Cpu(dir: string, files: { quotaUs?: number; periodUs?: number; usageNs?: number }): TreeFiles {
  return cgroupFiles(dir, { 'cpu.cfs_quota_us': files.quotaUs, 'cpu.cfs_period_us': files.periodUs, 'cpuacct.usage': files.usageNs });
}

/** cgroup v2 memory files: `memory.max` (bytes, or `'max'` for none) and `memory.current`. */
export function cgroupV2Memory(dir: string, files: { max?: number | 'max'; current?: number }): TreeFiles {
  return cgroupFiles(dir, { 'memory.max': files.max, 'memory.current': files.current });
}

/** cgroup v1 memory files: `memory.limit_in_bytes` (a bigint for the kernel's near-2^63 "no limit") and `memory.usage_in_bytes`. */
export function cgroupV1Memory(dir: string, files: { limitBytes?: number | bigint; usageBytes?: number }): TreeFiles {
  return cgroupFiles(dir, { 'memory.limit_in_bytes': files.limitBytes, 'memory.usage_in_bytes': files.usageBytes });
}
