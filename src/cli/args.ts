/** Reading flag values as typed, not as the option parser guessed them. */
import { invalidArgument } from "../core/errors";
import { DEFAULT_MASTER_ADDRESS } from "../core/limits";
import { parseHostPort } from "../core/address";
import { localClusterMaster } from "../cluster/state";

/**
 * The raw text of a string flag. The parser turns numeric-looking values into numbers
 * (`--id 007` becomes 7), so read it back from argv as the user typed it.
 */
export function stringFlag(argv: string[], name: string, parsed: unknown): string | undefined {
  if (parsed === undefined || parsed === null || parsed === false) return undefined;
  for (let i = argv.length - 1; i >= 0; i--) {
    const arg = argv[i]!;
    if (arg === `--${name}` && i + 1 < argv.length) return argv[i + 1];
    if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3);
  }
  if (parsed === true) throw invalidArgument(`--${name} needs a value`);
  return String(parsed);
}

/** An integer flag within bounds. */
export function intFlag(value: unknown, name: string, min: number, max: number): number {
  const n = typeof value === "number" ? value : Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw invalidArgument(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * The master to talk to: --master, else $DROPBOX_MASTER, else the local cluster started
 * in this directory (`cluster up`), else the default; validated.
 */
export function masterAddress(argv: string[], parsed: unknown): string {
  const address = stringFlag(argv, "master", parsed) ?? process.env.DROPBOX_MASTER ?? localClusterMaster(process.cwd()) ?? DEFAULT_MASTER_ADDRESS;
  parseHostPort(address, "--master");
  return address;
}
