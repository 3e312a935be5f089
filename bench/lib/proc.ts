/**
 * Linux /proc readings: a process's CPU time and resident memory, and which process listens on
 * a loopback TCP port (to report the CPU share of peers we did not start). Read-only.
 */
import fs from 'node:fs';

const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) is 100 on every Linux we run on

/** CPU seconds (user + system, all threads) used so far by `pid`, or null if unreadable. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) may contain spaces: fields are counted after its ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

function ppidMap(): Map<number, number[]> {
  const kids = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      (kids.get(ppid) ?? kids.set(ppid, []).get(ppid)!).push(Number(d));
    } catch {
      /* gone */
    }
  }
  return kids;
}

/** `pid` and all its descendants (fluctuat runs its network-facing broker as a child). */
export function processTree(pid: number): number[] {
  const kids = ppidMap();
  const out: number[] = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(kids.get(p) ?? []));
  }
  return out;
}

/** CPU seconds of `pid` and its descendants, or null if `pid` is unreadable. */
export function treeCpuSeconds(pid: number): number | null {
  if (cpuSeconds(pid) === null) return null;
  return processTree(pid).reduce((a, p) => a + (cpuSeconds(p) ?? 0), 0);
}

/** Resident memory of `pid` and its descendants, bytes. */
export function treeRssBytes(pid: number): number | null {
  if (rssBytes(pid) === null) return null;
  return processTree(pid).reduce((a, p) => a + (rssBytes(p) ?? 0), 0);
}

/** Resident set size in bytes, or null. */
export function rssBytes(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** The pid of the process listening on 127.0.0.1:`port` (or any address), or null. */
export function pidListeningOn(port: number): number | null {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue; // 0A = LISTEN
      const local = f[1]!;
      if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) inodes.add(f[9]!);
    }
  }
  if (inodes.size === 0) return null;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (link.startsWith('socket:[') && inodes.has(link.slice(8, -1))) return Number(pid);
      } catch {
        /* gone */
      }
    }
  }
  return null;
}

/** CPU used by this whole process (every thread: the generator's workers included), seconds. */
export function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** CPU seconds so far of each thread of this process, by thread id (Linux; empty elsewhere). */
export function selfThreadCpuSeconds(): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[];
  try {
    tids = fs.readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'latin1');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, (Number(rest[11]) + Number(rest[12])) / CLK_TCK);
    } catch {
      /* the thread ended */
    }
  }
  return out;
}

/** The largest CPU share (in cores) any one thread had between two `selfThreadCpuSeconds`. */
export function busiestThread(before: Map<string, number>, after: Map<string, number>, seconds: number): number {
  let most = 0;
  for (const [tid, s] of after) most = Math.max(most, s - (before.get(tid) ?? s));
  return seconds > 0 ? most / seconds : 0;
}
