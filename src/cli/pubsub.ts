import type { Command } from 'commander';
import { connect, type ConnectOptions, type Message } from '../client/index.js';
import { addConnectionOptions, withClientOptions, type ConnectionCliOptions } from './connection.js';

interface PubOptions extends ConnectionCliOptions {
  name?: string;
}

interface SubOptions extends ConnectionCliOptions {
  from?: string;
  queue?: string;
  count?: number;
  json: boolean;
}

/** `fluctuat pub <channel> [message...]`: the message, or each line of stdin, acknowledged. */
export function pubCommand(program: Command, done: (p: Promise<number>) => void): void {
  addConnectionOptions(
    program
      .command('pub')
      .description('publish a message (or each line of standard input) and wait for the acknowledgement')
      .argument('<channel>', 'channel name')
      .argument('[message...]', 'message text; read lines from stdin when absent'),
  )
    .option('--name <identity>', 'publisher identity')
    .action((channel: string, words: string[], o: PubOptions) => done(withClientOptions('pub', o, (options) => pub(channel, words, o, options))));
}

async function pub(channel: string, words: string[], o: PubOptions, options: Omit<ConnectOptions, 'name'>): Promise<number> {
  const client = await connect(o.url, { ...options, reconnect: false, ...(o.name ? { name: o.name } : {}) });
  try {
    if (words.length > 0) {
      const { offset } = await client.publish(channel, words.join(' '));
      process.stdout.write(`${channel} #${offset}\n`);
    } else {
      const pending: Promise<unknown>[] = [];
      let carry = '';
      for await (const chunk of process.stdin) {
        const lines = (carry + String(chunk)).split('\n');
        carry = lines.pop() ?? '';
        for (const line of lines) pending.push(client.publish(channel, line));
      }
      if (carry) pending.push(client.publish(channel, carry));
      await Promise.all(pending);
      process.stdout.write(`${channel}: ${pending.length} messages acknowledged\n`);
    }
    return 0;
  } catch (err) {
    process.stderr.write(`fluctuat pub: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await client.close();
  }
}

/** `fluctuat sub <pattern>`: print deliveries as they come, like the original. */
export function subCommand(program: Command, done: (p: Promise<number>) => void): void {
  addConnectionOptions(
    program
      .command('sub')
      .description('subscribe and print messages (human lines, or JSON with --json)')
      .argument('<pattern>', 'channel or pattern (* one token, > the rest)'),
  )
    .option('-f, --from <position>', 'beginning | new | offset:N | after:N | last:N | time:T', 'new')
    .option('-q, --queue <group>', 'join a queue group')
    .option('-n, --count <n>', 'exit after n messages', (v: string) => Number(v))
    .option('--json', 'one JSON object per message', false)
    .action((pattern: string, o: SubOptions) => done(withClientOptions('sub', o, (options) => sub(pattern, o, options))));
}

async function sub(pattern: string, o: SubOptions, options: Omit<ConnectOptions, 'name'>): Promise<number> {
  const client = await connect(o.url, options);
  return new Promise<number>((resolve) => {
    let seen = 0;
    const finish = (code: number): void => {
      void client.close().then(() => resolve(code));
    };
    let s;
    try {
      s = client.subscribe(
      pattern,
      (msg: Message) => {
        if (o.json) {
          process.stdout.write(
            JSON.stringify({ channel: msg.channel, offset: msg.offset, time: msg.time, publisher: msg.publisher, reply: msg.reply, text: msg.text }) + '\n',
          );
        } else {
          process.stdout.write(`pubsub on ${msg.channel} at ${new Date(msg.time / 1000).toTimeString().slice(0, 8)}: ${msg.text}\n`);
        }
        if (o.count && ++seen >= o.count) finish(0);
      },
      { from: o.from ?? 'new', ...(o.queue ? { queue: o.queue } : {}) },
      );
    } catch (err) {
      process.stderr.write(`fluctuat sub: ${(err as Error).message}\n`);
      finish(2);
      return;
    }
    s.ready.catch((err: Error) => {
      process.stderr.write(`fluctuat sub: ${err.message}\n`);
      finish(1);
    });
    process.once('SIGINT', () => finish(0));
    process.once('SIGTERM', () => finish(0));
  });
}
