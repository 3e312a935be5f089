/** A delivered message. */
import { ClientErrorCode, FluctuatError } from './errors.js';

/** What a message can be answered with. */
export type Payload = string | Uint8Array;

/** The part of the client a message needs to answer itself. */
export interface Responder {
  publish(channel: string, data: Payload, options?: { reply?: string }): Promise<{ offset: number }>;
}

export class Message {
  constructor(
    /** The channel the message was published on (not the subscription's pattern). */
    readonly channel: string,
    /** Per-channel offset, from 1; 0 on ephemeral (`_INBOX.`) channels. */
    readonly offset: number,
    /** Broker receive time, microseconds since the epoch. */
    readonly time: number,
    /** Identity of the publisher (its `NAME`, or what the broker calls the connection). */
    readonly publisher: string,
    /** Reply channel for request/reply, undefined when none. */
    readonly reply: string | undefined,
    /**
     * The payload, safe to keep and to change: a copy, or for 16 KiB and more a view of the
     * socket read it arrived in, which nothing else writes.
     */
    readonly data: Buffer,
    private readonly responder: Responder,
  ) {}

  /** The payload decoded as UTF-8. */
  get text(): string {
    return this.data.toString('utf8');
  }

  /** Publish an answer on this message's reply channel. */
  respond(data: Payload): Promise<{ offset: number }> {
    if (this.reply === undefined) {
      return Promise.reject(new FluctuatError(ClientErrorCode.NO_REPLY, `message ${this.channel} #${this.offset} carries no reply channel`));
    }
    return this.responder.publish(this.reply, data);
  }

  toJSON(): object {
    return { channel: this.channel, offset: this.offset, time: this.time, publisher: this.publisher, reply: this.reply, text: this.text };
  }
}
