/**
 * fluctuat client library: the package's public entry point.
 *
 *   import { connect } from 'fluctuat';
 *   const client = await connect('fluctuat://127.0.0.1:2023', { name: 'probe-1' });
 *
 * It imports nothing from the server side: only the pure protocol code is shared.
 */
export { connect, Client } from './client.js';
export type { ClientEvents, ChannelInfo, DropInfo, GapInfo, HandleOptions, PublishOptions, RequestOptions, SubscribeOptions } from './client.js';
export { Subscription } from './subscription.js';
export type { MessageHandler } from './subscription.js';
export { Message } from './message.js';
export type { Payload } from './message.js';
export { FluctuatError, ClientErrorCode, ErrorCode } from './errors.js';
export type { FluctuatErrorCode } from './errors.js';
export type { ConnectOptions, TlsOptions } from './options.js';
export type { Position, PositionInput } from './names.js';
