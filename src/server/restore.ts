// `tessera snapshot restore`: a fresh data directory whose first range starts from a backup made
// by `etcdctl snapshot save`, with the membership given on the command line (as etcdutl does).
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { readKeyFile } from '../security/index.ts';
import { NodeStorage } from '../storage/index.ts';
import { ConfigError } from './config.ts';
import type { NodeConfig } from './config.ts';
import { decodeBackup } from './backup.ts';
import { clusterIdOf, initialMembers } from './members.ts';
import { replaceMembers } from './snapshots.ts';

export interface RestoreResult {
  index: number;
  members: number;
  dataDir: string;
}

export async function restoreBackup(file: string, config: NodeConfig): Promise<RestoreResult> {
  if (existsSync(config.dataDir) && readdirSync(config.dataDir).length > 0) {
    throw new ConfigError(`--data-dir ${config.dataDir} is not empty; restore needs a new directory`);
  }
  const backup = decodeBackup(readFileSync(file));
  const { self, members } = initialMembers(config);
  mkdirSync(config.dataDir, { recursive: true });
  // With --encryption-key-file the restored directory is sealed like a running node's (no plaintext step).
  const encryption = config.encryptionKeyFile === undefined ? undefined : readKeyFile(config.encryptionKeyFile);
  const storage = NodeStorage.open({ dataDir: config.dataDir, sync: true, ...(encryption === undefined ? {} : { encryption }) });
  try {
    storage.putMeta('cluster', { clusterId: clusterIdOf(config.initialClusterToken), selfId: self.id, members });
    const confState = { voters: members.map((m) => m.id), votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
    const group = storage.group(1);
    const data = replaceMembers(backup.data, members);
    group.applySnapshot({ metadata: { index: backup.index, term: backup.term, confState }, data });
    group.setHardState({ term: backup.term, vote: 0, commit: backup.index });
    await storage.commit();
  } finally {
    await storage.close();
  }
  return { index: backup.index, members: members.length, dataDir: config.dataDir };
}
