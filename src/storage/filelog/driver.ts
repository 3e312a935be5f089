import type { Log, StorageDriver, StorageOptions } from '../engine.js';
import { checkDataDir } from './check.js';
import { FileStorageEngine } from './engine.js';

/** The embedded default: append-only segment files under dataDir. */
export const fileDriver: StorageDriver = Object.freeze({
  name: 'file',
  create: (options: StorageOptions, log: Log) => new FileStorageEngine(options, log),
  check: checkDataDir,
});
