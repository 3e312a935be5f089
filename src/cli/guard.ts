/** Run a command's body; an unexpected error becomes one clear line on stderr and exit status 1. */
export async function guard(command: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    process.stderr.write(`fluctuat ${command}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
