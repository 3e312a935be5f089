import fs from 'node:fs';
import { pino } from 'pino';
import { makeConfig, type ConfigOverrides } from '../../src/server/config.js';
import { FluctuatServer } from '../../src/server/server.js';
import { tmpDir } from './broker.js';

export interface InProcessBroker {
  server: FluctuatServer;
  port: number;
  url: string;
  dataDir: string;
  close(): Promise<void>;
}

/** A broker in the test's own process, on a real loopback socket with a free port. */
export async function startInProcess(overrides: ConfigOverrides = {}): Promise<InProcessBroker> {
  const dataDir = overrides.storageOptions?.dataDir ?? tmpDir();
  const config = makeConfig({
    ...overrides,
    listen: [{ host: '127.0.0.1', port: 0 }],
    storageOptions: { ...overrides.storageOptions, dataDir },
  });
  const server = await FluctuatServer.start(config, pino({ level: process.env.FLUCTUAT_TEST_LOG ?? 'silent' }));
  const port = server.addresses()[0]!.port;
  return {
    server,
    port,
    url: `fluctuat://127.0.0.1:${port}`,
    dataDir,
    async close() {
      await server.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
