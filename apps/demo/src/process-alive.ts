/**
 * True while a process with this pid exists (signal 0 checks without sending anything).
 *
 * @example
 * if (isProcessAlive(child.pid)) process.kill(child.pid, 'SIGKILL');
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
