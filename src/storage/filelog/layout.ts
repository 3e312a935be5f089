/** Names on disk: `<dataDir>/<channel>/<20-digit base offset>.seg`. */

const SEGMENT_NAME = /^(\d{20})\.seg$/;
/** Dotted tokens of [A-Za-z0-9_-]: no token can be empty, so no name is '.', '..' or a path. */
const CHANNEL_NAME = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;
const MAX_CHANNEL_BYTES = 255;

export function segmentFileName(base: number): string {
  return `${String(base).padStart(20, '0')}.seg`;
}

/** The base offset a segment file name stands for, or 0 when it is not a segment name. */
export function segmentBase(name: string): number {
  const m = SEGMENT_NAME.exec(name);
  if (!m) return 0;
  const base = Number(m[1]);
  return Number.isSafeInteger(base) && base >= 1 ? base : 0;
}

export function isChannelName(name: string): boolean {
  return name.length <= MAX_CHANNEL_BYTES && CHANNEL_NAME.test(name);
}
