import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** This process's cgroups, from `/proc/self/cgroup`. */
export interface CgroupPaths {
  /** The cgroup v2 path (`0::/path`), if the unified hierarchy is mounted. */
  readonly v2?: string;
  /** cgroup v1 paths by controller (`cpu`, `cpuacct`, `memory`, ...). */
  readonly v1: ReadonlyMap<string, string>;
}

/**
 * Parses `/proc/self/cgroup`: `0::/path` is v2, `N:controller[,controller]:/path` is v1.
 *
 * @example
 * parseCgroupFile('4:memory:/docker/abc\n0::/\n'); // { v2: '/', v1: Map { 'memory' => '/docker/abc' } }
 */
export function parseCgroupFile(text: string): CgroupPaths {
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  for (const line of text.trim().split('\n')) {
    const [id, controllers, path] = line.split(':');
    if (path === undefined) continue;
    if (id === '0' && controllers === '') v2 = path;
    else for (const c of controllers?.split(',') ?? []) v1.set(c, path);
  }
  return { ...(v2 === undefined ? {} : { v2 }), v1 };
}

/** A file's text, or undefined when it cannot be read. */
export async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** `/proc/self/cgroup` of this process, or undefined off Linux. */
export async function readCgroupPaths(procRoot: string): Promise<CgroupPaths | undefined> {
  const text = await readText(join(procRoot, 'self/cgroup'));
  return text === undefined ? undefined : parseCgroupFile(text);
}

/** The first directory that holds `file`: the cgroup's own first, then the namespace root (cgroupns shows `/`). */
export async function firstDirWith(candidates: readonly string[], file: string): Promise<string | undefined> {
  for (const dir of candidates) if ((await readText(join(dir, file))) !== undefined) return dir;
  return undefined;
}

/** `dir` and its ancestors up to `root` (a parent's limit binds its children too). */
export function upToRoot(root: string, dir: string): string[] {
  const out: string[] = [];
  for (let current = dir; ; current = join(current, '..')) {
    out.push(current);
    if (current === root || !current.startsWith(root) || current === '/') break;
  }
  return out;
}

/** The v1 directories to try for `controller`, own cgroup first (also the combined `cpu,cpuacct` mount). */
export function v1Candidates(root: string, paths: CgroupPaths | undefined, controller: string, combined?: string): string[] {
  const path = paths?.v1.get(controller) ?? '/';
  const mounts = combined ? [controller, combined] : [controller];
  return [...mounts.map((m) => join(root, m, path)), ...mounts.map((m) => join(root, m))];
}
