import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fake `/proc` (under `proc/`) and cgroup tree (under `cgroup/`) in a temp dir, for the CPU and memory readers. */
export interface FakeTree extends AsyncDisposable {
  readonly procRoot: string;
  readonly cgroupRoot: string;
  /** Writes (or overwrites) files, paths relative to the tree's root. */
  write(files: Record<string, string>): Promise<void>;
}

/**
 * Creates a {@link FakeTree} holding `files`; `await using` removes it.
 *
 * @example
 * await using t = await fakeTree({ 'proc/stat': 'cpu  1 0 0 1 0 0 0 0 0 0\n' });
 */
export async function fakeTree(files: Record<string, string>): Promise<FakeTree> {
  const root = await mkdtemp(join(tmpdir(), 'guard-playbooks-tree-'));
  const write = async (more: Record<string, string>): Promise<void> => {
    for (const [path, text] of Object.entries(more)) {
      await mkdir(join(root, path, '..'), { recursive: true });
      await writeFile(join(root, path), text);
    }
  };
  await write(files);
  return { procRoot: join(root, 'proc'), cgroupRoot: join(root, 'cgroup'), write, [Symbol.asyncDispose]: () => rm(root, { recursive: true, force: true }) };
}
