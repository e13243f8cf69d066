/** Reading flag values as typed, not as the option parser guessed them. */
import { readFileSync } from "node:fs";
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

/** Environment variable holding the cluster token (how `cluster up` hands it to its children). */
export const TOKEN_ENV = "DROPBOX_TOKEN";
/** Environment variable holding the secret master and nodes sign and check grants with (never given to clients). */
export const NODE_SECRET_ENV = "DROPBOX_NODE_SECRET";
/** Environment variable holding the master's read-only token. */
export const READ_TOKEN_ENV = "DROPBOX_READ_TOKEN";

/** A token from a flag, a file or the environment (in that order); a file's surrounding whitespace is dropped. */
export function tokenFrom(argv: string[], flag: string, parsed: unknown, fileFlag: string | null, fileParsed: unknown, env: string): string | undefined {
  const direct = stringFlag(argv, flag, parsed);
  if (direct !== undefined) return checkToken(direct, `--${flag}`);
  const file = fileFlag ? stringFlag(argv, fileFlag, fileParsed) : undefined;
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw invalidArgument(`--${fileFlag} ${file}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
    }
    return checkToken(text.trim(), `--${fileFlag}`);
  }
  const fromEnv = process.env[env];
  return fromEnv ? checkToken(fromEnv, `$${env}`) : undefined;
}

function checkToken(token: string, source: string): string {
  // Printable ASCII only: it travels as a gRPC metadata value.
  if (token.length < 16 || token.length > 4096 || !/^[\x21-\x7e]+$/.test(token)) throw invalidArgument(`${source}: a token is 16 to 4096 printable ASCII characters without spaces`);
  return token;
}
