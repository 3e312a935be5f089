/**
 * Per-tenant quotas: how many channels a tenant may hold, and how many bytes its channels may
 * keep in storage. A tenant's channels are the ones under its namespace, `_T.<tenant>.`;
 * channels outside every tenant (an open server, users of the default tenant) are not counted.
 *
 * The broker asks `admit` before it appends, and calls `committed` from its commit handler.
 * Usage is what storage reports (`ChannelLog.stats().bytes`: record bytes on disk for the
 * file driver, payload bytes for memory), so it is recomputed from the log at start and
 * follows retention. Retention that runs on its own (by age, every few seconds) is seen when
 * a refused publish re-reads the tenant's channels, at most every REFRESH_MS.
 *
 * A publish is admitted when the tenant's stored bytes plus its payload fit in the quota, so
 * the quota can be overshot by what is in flight when it is reached (publishes accepted in the
 * same few milliseconds) and by record headers, not more.
 */
import { ErrorCode, ProtocolError } from '../protocol/errors.js';
import { TENANT_PREFIX } from '../protocol/names.js';
import type { StorageEngine } from '../storage/engine.js';

export interface TenantQuota {
  readonly name: string;
  /** Channels this tenant may hold (0: the server-wide `channelsPerTenant` applies). */
  readonly maxChannels: number;
  /** Bytes its channels may keep (0: the server-wide `diskPerTenantBytes` applies). */
  readonly diskQuotaBytes: number;
}

export interface QuotaSettings {
  /** Channels per tenant (0: no limit). */
  readonly channelsPerTenant: number;
  /** Stored bytes per tenant (0: no limit). */
  readonly diskPerTenantBytes: number;
  /** Per-tenant overrides. */
  readonly tenants: readonly TenantQuota[];
}

export const noQuotas: QuotaSettings = Object.freeze({ channelsPerTenant: 0, diskPerTenantBytes: 0, tenants: Object.freeze([]) });

/** How stale a refused tenant's usage may be before it is re-read from storage. */
const REFRESH_MS = 250;

/** A refused publish: which quota, whose, the limit and the usage, for the error and the audit log. */
export class QuotaError extends ProtocolError {
  constructor(
    readonly kind: 'tenant-channels' | 'tenant-disk',
    readonly tenant: string,
    readonly limit: number,
    readonly used: number,
    message: string,
  ) {
    super(kind === 'tenant-channels' ? ErrorCode.CHANNEL_QUOTA : ErrorCode.DISK_QUOTA, message);
    this.name = 'QuotaError';
  }
}

interface Usage {
  readonly tenant: string;
  readonly maxChannels: number;
  readonly maxBytes: number;
  channels: number;
  bytes: number;
  readonly names: string[];
  refreshedAt: number;
}

/** The refusal counters, zero, for a broker without quotas (stats always show every limit). */
export const NO_REFUSALS = Object.freeze({ channelQuotaRefused: 0, diskQuotaRefused: 0 });

/** A tenant channel: its tenant's usage, and its stored bytes when last seen. */
interface Tracked {
  readonly usage: Usage;
  bytes: number;
}

export class TenantQuotas {
  readonly counters = { ...NO_REFUSALS };
  private readonly tenants = new Map<string, Usage>();
  /** Every tenant channel, looked up by name on each publish (no allocation on that path). */
  private readonly channels = new Map<string, Tracked>();

  constructor(
    private readonly settings: QuotaSettings,
    private readonly engine: StorageEngine,
  ) {}

  /** True when some quota is set: otherwise the broker need not call anything. */
  static needed(s: QuotaSettings): boolean {
    return s.channelsPerTenant > 0 || s.diskPerTenantBytes > 0 || s.tenants.some((t) => t.maxChannels > 0 || t.diskQuotaBytes > 0);
  }

  /** Counts every existing channel (call once storage has started). */
  recount(): void {
    this.tenants.clear();
    this.channels.clear();
    for (const channel of this.engine.channels()) {
      if (!channel.startsWith(TENANT_PREFIX)) continue;
      const tracked = this.track(channel);
      tracked.bytes = this.engine.channel(channel).stats().bytes;
      tracked.usage.bytes += tracked.bytes;
    }
  }

  /** Null when `channel` may take `payloadBytes` more, else the refusal. Counts a new channel. */
  admit(channel: string, payloadBytes: number): QuotaError | null {
    const tracked = this.channels.get(channel);
    let usage: Usage;
    if (tracked) {
      usage = tracked.usage;
    } else {
      if (!channel.startsWith(TENANT_PREFIX)) return null;
      usage = this.usageFor(tenantOf(channel));
      if (usage.maxChannels > 0 && usage.channels >= usage.maxChannels) {
        this.counters.channelQuotaRefused++;
        return new QuotaError(
          'tenant-channels',
          usage.tenant,
          usage.maxChannels,
          usage.channels,
          `tenant ${usage.tenant} has ${usage.channels} channels, its limit (limit channels ${usage.maxChannels}); channel not created`,
        );
      }
    }
    if (usage.maxBytes > 0 && usage.bytes + payloadBytes > usage.maxBytes) {
      if (performance.now() - usage.refreshedAt >= REFRESH_MS) this.refresh(usage);
      if (usage.bytes + payloadBytes > usage.maxBytes) {
        this.counters.diskQuotaRefused++;
        return new QuotaError(
          'tenant-disk',
          usage.tenant,
          usage.maxBytes,
          usage.bytes,
          `tenant ${usage.tenant} stores ${usage.bytes} bytes; ${payloadBytes} more would pass its disk quota of ${usage.maxBytes} bytes (limit disk); free space with retention`,
        );
      }
    }
    if (!tracked) this.track(channel);
    return null;
  }

  /** From the commit handler: the channel's stored bytes changed (appends, retention on write). */
  committed(channel: string): void {
    const tracked = this.channels.get(channel);
    if (tracked === undefined) return; // not a tenant's channel
    const bytes = this.engine.channel(channel).stats().bytes;
    tracked.usage.bytes += bytes - tracked.bytes;
    tracked.bytes = bytes;
  }

  /** Per-tenant usage and limits, for listings and tests. */
  report(): { tenant: string; channels: number; maxChannels: number; bytes: number; maxBytes: number }[] {
    return [...this.tenants.values()].map((u) => ({ tenant: u.tenant, channels: u.channels, maxChannels: u.maxChannels, bytes: u.bytes, maxBytes: u.maxBytes }));
  }

  private track(channel: string): Tracked {
    const usage = this.usageFor(tenantOf(channel));
    const tracked: Tracked = { usage, bytes: 0 };
    usage.channels++;
    usage.names.push(channel);
    this.channels.set(channel, tracked);
    return tracked;
  }

  /** Re-reads a tenant's stored bytes (retention by age may have freed some). */
  private refresh(usage: Usage): void {
    let total = 0;
    for (const channel of usage.names) {
      const tracked = this.channels.get(channel)!;
      tracked.bytes = this.engine.channel(channel).stats().bytes;
      total += tracked.bytes;
    }
    usage.bytes = total;
    usage.refreshedAt = performance.now();
  }

  private usageFor(tenant: string): Usage {
    let usage = this.tenants.get(tenant);
    if (usage) return usage;
    const own = this.settings.tenants.find((t) => t.name === tenant);
    const maxChannels = own?.maxChannels || this.settings.channelsPerTenant;
    const maxBytes = own?.diskQuotaBytes || this.settings.diskPerTenantBytes;
    usage = { tenant, maxChannels, maxBytes, channels: 0, bytes: 0, names: [], refreshedAt: performance.now() };
    this.tenants.set(tenant, usage);
    return usage;
  }
}

/** `_T.acme.probes.x` → `acme`. */
function tenantOf(channel: string): string {
  return channel.slice(TENANT_PREFIX.length, channel.indexOf('.', TENANT_PREFIX.length));
}
