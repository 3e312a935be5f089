/**
 * Typed messages between the privilege-separated processes, over Node's IPC channel, in the
 * style of OpenBSD's imsg: each message has a type; handlers are registered per type; a
 * synchronous-looking Query/Reply (`query`) rides on the asynchronous stream with an id.
 *
 * Each endpoint declares which types it accepts from its peer. Anything else is refused and
 * logged: a compromised broker child cannot ask the parent for more than it was given.
 */
export interface Message {
  readonly type: string;
  readonly id?: number;
  /** Set on replies: the id of the query answered. */
  readonly re?: number;
  readonly error?: string;
  readonly body?: unknown;
}

/** What carries messages: a ChildProcess from the parent's side, `process` from a child's. */
export interface Carrier {
  send?(message: unknown, handle?: unknown, callback?: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown, handle?: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown, handle?: unknown) => void): unknown;
}

type Handler = (body: unknown, handle: unknown) => unknown;

export class IpcChannel {
  private readonly handlers = new Map<string, Handler>();
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 0;
  private readonly listener = (raw: unknown, handle?: unknown): void => this.receive(raw, handle);

  constructor(
    readonly peer: string,
    private readonly carrier: Carrier,
    /** Message types this side accepts from the peer. */
    private readonly accepts: ReadonlySet<string>,
    private readonly onRefused: (type: string) => void = () => {},
  ) {
    carrier.on('message', this.listener);
  }

  handle(type: string, fn: Handler): this {
    if (!this.accepts.has(type)) throw new Error(`${this.peer}: handler for "${type}", which this side does not accept`);
    this.handlers.set(type, fn);
    return this;
  }

  send(type: string, body?: unknown, handle?: unknown): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.carrier.send) return reject(new Error(`no IPC channel to ${this.peer}`));
      this.carrier.send({ type, body }, handle, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Send and wait for the peer's reply (or its error), like imsg's compose-and-wait. */
  query<T>(type: string, body: unknown, timeoutMs = 10_000): Promise<T> {
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.peer} did not answer ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      if (!this.carrier.send) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new Error(`no IPC channel to ${this.peer}`));
        return;
      }
      // A peer that is gone (it stopped on a signal sent to the whole process group) fails the
      // query; without the callback its EPIPE is an 'error' event nobody listens to.
      this.carrier.send({ type, id, body }, undefined, (err) => {
        if (err === null || !this.pending.delete(id)) return;
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  close(): void {
    this.carrier.off('message', this.listener);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(`channel to ${this.peer} closed`));
    }
    this.pending.clear();
  }

  private receive(raw: unknown, handle: unknown): void {
    if (!raw || typeof raw !== 'object' || typeof (raw as Message).type !== 'string') return;
    const msg = raw as Message;
    if (msg.type === 'reply') {
      const p = msg.re === undefined ? undefined : this.pending.get(msg.re);
      if (!p) return;
      this.pending.delete(msg.re!);
      clearTimeout(p.timer);
      if (msg.error) p.reject(new Error(msg.error));
      else p.resolve(msg.body);
      return;
    }
    const handler = this.accepts.has(msg.type) ? this.handlers.get(msg.type) : undefined;
    if (!handler) {
      this.onRefused(msg.type);
      if (msg.id !== undefined) this.carrier.send?.({ type: 'reply', re: msg.id, error: `"${msg.type}" is not accepted from ${this.peer}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(msg.body, handle))
      .then(
        (body) => msg.id !== undefined && this.carrier.send?.({ type: 'reply', re: msg.id, body }),
        (err: unknown) => msg.id !== undefined && this.carrier.send?.({ type: 'reply', re: msg.id, error: (err as Error).message }),
      );
  }
}
