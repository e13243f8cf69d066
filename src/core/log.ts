/** Server logs: one timestamped line per event on stdout (the supervisor sends it to a file). */
export type Log = (line: string) => void;

/** A logger that prefixes each line with the time and the process's role. */
export function makeLog(role: string): Log {
  return (line) => process.stdout.write(`${new Date().toISOString()} ${role} ${line}\n`);
}
