/** Reading the end of log files, once or following them as they grow. */
import { open, stat } from "node:fs/promises";

/** Bytes read from the end of a log to find its last lines: enough for hundreds of lines. */
const TAIL_READ_BYTES = 256 * 1024;

/** The last `count` lines of a file; empty when the file does not exist. */
export async function lastLines(path: string, count: number): Promise<string[]> {
  if (count <= 0) return [];
  let file;
  try {
    file = await open(path, "r");
  } catch {
    return [];
  }
  try {
    const size = (await file.stat()).size;
    const length = Math.min(size, TAIL_READ_BYTES);
    const buffer = Buffer.alloc(length);
    await file.read(buffer, 0, length, size - length);
    const lines = buffer.toString("utf8").split("\n");
    if (lines.at(-1) === "") lines.pop();
    // The first line may be cut in the middle when the read started mid-file.
    if (length < size) lines.shift();
    return lines.slice(-count);
  } finally {
    await file.close();
  }
}

/** Size of a file, 0 when it does not exist. */
export async function fileSize(path: string): Promise<number> {
  return (await stat(path).catch(() => null))?.size ?? 0;
}

/** The bytes of a file from `offset` to its current end, as text. */
export async function readFrom(path: string, offset: number): Promise<{ text: string; end: number }> {
  let file;
  try {
    file = await open(path, "r");
  } catch {
    return { text: "", end: offset };
  }
  try {
    const size = (await file.stat()).size;
    // A log that shrank was truncated or replaced: start it over.
    const start = size < offset ? 0 : offset;
    const buffer = Buffer.alloc(size - start);
    await file.read(buffer, 0, buffer.length, start);
    return { text: buffer.toString("utf8"), end: size };
  } finally {
    await file.close();
  }
}
