// `tessera storage`: offline tools for a stopped node's data directory: re-encrypt everything
// under the newest key of a key file, and add a new key to a key file (rotation).
import type { Command } from 'commander';
import { addKeyToFile, readKeyFile, SecurityError } from '../security/index.ts';
import { reencryptDataDir, StorageError } from '../storage/index.ts';

export function registerStorageCommands(program: Command): void {
  const storage = program.command('storage').description('Offline tools for a node\'s data directory (encryption at rest).');
  storage
    .command('re-encrypt')
    .description(
      'Rewrite every log entry and snapshot under the newest key of --key-file (plaintext data gets encrypted). ' +
        'The node must be stopped. Afterwards only the newest key is needed.',
    )
    .requiredOption('--data-dir <dir>', 'the node\'s data directory')
    .requiredOption('--key-file <path>', 'encryption key file (the node\'s --encryption-key-file), holding every key the data uses')
    .action(async (options: { dataDir: string; keyFile: string }) => {
      await report(async () => {
        const result = await reencryptDataDir({ dataDir: options.dataDir, keyring: readKeyFile(options.keyFile) });
        console.log(
          `re-encrypted ${options.dataDir} under key "${result.keyId}": ${result.entries} log entries, ${result.chunks} snapshot chunks; ` +
            'older keys may now be removed from the key file',
        );
      });
    });
  storage
    .command('new-key')
    .description('Append a new random AES-256 key to --key-file (created with mode 0600); it seals new data after the next start.')
    .requiredOption('--key-file <path>', 'encryption key file')
    .option('--id <id>', 'key id (default key-<n>)')
    .action(async (options: { keyFile: string; id?: string }) => {
      await report(async () => {
        const id = addKeyToFile(options.keyFile, options.id);
        console.log(`added key "${id}" to ${options.keyFile}; restart nodes to seal new writes with it`);
      });
    });
}

async function report(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    if (error instanceof SecurityError || error instanceof StorageError) {
      const hint = error.name === 'StorageLockedError' ? ' (stop the node first: re-encrypt needs the data directory to itself)' : '';
      console.error(`tessera: ${error.message}${hint}`);
      process.exit(2);
    }
    throw error;
  }
}
