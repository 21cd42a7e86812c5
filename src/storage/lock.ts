// One process per data directory: a lock file holding the owner's pid. A file left behind by a
// crashed process is taken over once that pid is gone.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { StorageLockedError } from './errors.ts';

/** Lock files this process holds (a second NodeStorage on the same directory is refused too). */
const heldHere = new Set<string>();

/** Takes the lock at `lockFile` or throws StorageLockedError; returns its release function. */
export function acquireLock(lockFile: string): () => void {
  if (heldHere.has(lockFile)) throw new StorageLockedError(lockFile, process.pid);
  try {
    writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const owner = Number.parseInt(readFileSync(lockFile, 'utf8'), 10);
    if (Number.isSafeInteger(owner) && owner !== process.pid && isAlive(owner)) throw new StorageLockedError(lockFile, owner);
    writeFileSync(lockFile, String(process.pid));
  }
  heldHere.add(lockFile);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    heldHere.delete(lockFile);
    rmSync(lockFile, { force: true });
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
