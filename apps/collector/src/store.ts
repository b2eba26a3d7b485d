import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  truncateSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  AgentIdSchema,
  ERRNO,
  StreamKindSchema,
  TraceEventBatchSchema,
  TracelabError,
  formatPath,
  parseOrThrow,
  type ErrnoCode,
  type StreamKind,
  type TraceEventBatch,
} from '@tracelab/contracts';
import type { CollectedEvent } from './collector.js';

/** Files rotate once they grow past 64 MiB unless told otherwise. */
export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024;

export interface FileStoreOptions {
  /** Root directory: batches go to `<dir>/<agent>/<stream>/<n>.jsonl`. */
  dir: string;
  /** A file that has grown past this many bytes is closed; the next batch starts `<n + 1>.jsonl`. */
  maxFileBytes?: number;
}

/** Where one (agent, stream) writes next and which sequence number its next stored event has. */
interface Tail {
  dir: string;
  file: number;
  size: number;
  /** undefined until the first batch of a stream that has no files yet. */
  nextSeq: number | undefined;
}

/** What the files of one (agent, stream) hold, in sequence order. */
export interface StoredStream {
  events: CollectedEvent[];
  /** Events the producer reported dropped, summed over the stored batches. */
  lost: number;
}

const FILE_NAME = /^(0|[1-9][0-9]{0,8})\.jsonl$/;

/**
 * Batches as JSON lines, one file series per (agent, stream). Each line is a TraceEventBatch
 * holding events never stored before, so a reader replays every event once in sequence order. A
 * store reopened on the same directory learns each stream's next sequence number from its last
 * line, and cuts off a line a crash left half-written (its batch was never acked).
 */
export class FileStore {
  readonly dir: string;
  private readonly maxFileBytes: number;
  private readonly tails = new Map<string, Tail>();

  constructor(options: FileStoreOptions) {
    const max = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    if (!Number.isSafeInteger(max) || max < 1)
      throw new TracelabError('EINVAL', `maxFileBytes must be a positive integer, got ${max}`);
    this.dir = options.dir;
    this.maxFileBytes = max;
    fsCall(() => mkdirSync(this.dir, { recursive: true }), this.dir);
  }

  /** The sequence number the next stored event of (agent, stream) must have, if any is stored. */
  nextSeq(agentId: string, stream: StreamKind): number | undefined {
    return this.tail(agentId, stream).nextSeq;
  }

  /**
   * Appends a batch as one line. Its events must continue the stored sequence (a batch may start
   * later, after a hole, never earlier): a batch overlapping stored events is EEXIST.
   */
  append(batch: TraceEventBatch): void {
    const tail = this.tail(batch.agentId, batch.stream);
    if (tail.nextSeq !== undefined && batch.firstSeq < tail.nextSeq)
      throw new TracelabError(
        'EEXIST',
        `${batch.agentId}/${batch.stream}: events from ${batch.firstSeq} are stored already ` +
          `(next is ${tail.nextSeq})`,
      );
    if (batch.events.length === 0) return;
    const line = `${JSON.stringify(batch)}\n`;
    const bytes = Buffer.byteLength(line);
    if (tail.size > this.maxFileBytes) {
      tail.file++;
      tail.size = 0;
    }
    const path = join(tail.dir, `${tail.file}.jsonl`);
    fsCall(() => {
      mkdirSync(tail.dir, { recursive: true });
      appendFileSync(path, line);
    }, path);
    tail.size += bytes;
    tail.nextSeq = batch.firstSeq + batch.events.length;
  }

  /** Every stored event of (agent, stream), in sequence order. */
  read(agentId: string, stream: StreamKind): StoredStream {
    return readStream(this.dir, agentId, stream);
  }

  private tail(agentId: string, stream: StreamKind): Tail {
    const key = `${agentId}/${stream}`;
    let tail = this.tails.get(key);
    if (tail === undefined) {
      tail = openTail(streamDir(this.dir, agentId, stream));
      this.tails.set(key, tail);
    }
    return tail;
  }
}

/**
 * Reads the stored events of one (agent, stream) under `dir`. A line without its newline at the
 * end of the last file is a write in progress or cut short, and is left out; any other line that
 * is not a valid batch is EIO.
 */
export function readStream(dir: string, agentId: string, stream: string): StoredStream {
  const sdir = streamDir(dir, agentId, parseOrThrow(StreamKindSchema, stream, 'stream'));
  if (!existsSync(sdir))
    throw new TracelabError('ENOENT', `nothing stored for ${agentId}/${stream} in ${dir}`);
  const events: CollectedEvent[] = [];
  let lost = 0;
  const files = listFiles(sdir);
  files.forEach((n, i) => {
    const path = join(sdir, `${n}.jsonl`);
    const text = fsCall(() => readFileSync(path, 'utf8'), path);
    const lines = text.split('\n');
    // the piece after the last newline: empty, or a line still being written
    lines.pop();
    if (i < files.length - 1 && !text.endsWith('\n') && text !== '')
      throw new TracelabError('EIO', `${path}: last line is cut short`);
    lines.forEach((line, l) => {
      const batch = parseLine(line, path, l + 1);
      lost += batch.lost;
      batch.events.forEach((event, k) =>
        events.push({
          agentId: batch.agentId,
          stream: batch.stream,
          seq: batch.firstSeq + k,
          event,
        }),
      );
    });
  });
  return { events, lost };
}

function streamDir(dir: string, agentId: string, stream: StreamKind): string {
  return join(dir, parseOrThrow(AgentIdSchema, agentId, 'agent'), stream);
}

/** The numbers n of the `<n>.jsonl` files of a stream directory, ascending. */
function listFiles(sdir: string): number[] {
  if (!existsSync(sdir)) return [];
  return fsCall(() => readdirSync(sdir), sdir)
    .filter((name) => FILE_NAME.test(name))
    .map((name) => Number.parseInt(name, 10))
    .sort((a, b) => a - b);
}

/** Finds the last stored batch of a stream directory, cutting off a half-written last line. */
function openTail(sdir: string): Tail {
  const files = listFiles(sdir);
  for (let i = files.length - 1; i >= 0; i--) {
    const n = files[i] as number;
    const path = join(sdir, `${n}.jsonl`);
    const text = fsCall(() => readFileSync(path, 'utf8'), path);
    const end = text.lastIndexOf('\n') + 1;
    if (end < text.length)
      fsCall(() => truncateSync(path, Buffer.byteLength(text.slice(0, end))), path);
    const lines = text.slice(0, end).split('\n');
    lines.pop();
    const last = lines[lines.length - 1];
    if (last === undefined) continue;
    const batch = parseLine(last, path, lines.length);
    return {
      dir: sdir,
      file: n,
      size: fsCall(() => statSync(path).size, path),
      nextSeq: batch.firstSeq + batch.events.length,
    };
  }
  return { dir: sdir, file: files[files.length - 1] ?? 0, size: 0, nextSeq: undefined };
}

function parseLine(line: string, path: string, lineNo: number): TraceEventBatch {
  let body: unknown;
  try {
    body = JSON.parse(line);
  } catch {
    throw new TracelabError('EIO', `${path}:${lineNo}: not JSON`, { line: lineNo });
  }
  const parsed = TraceEventBatchSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = formatPath(
      (issue?.path ?? []).map((k) => (typeof k === 'number' ? k : String(k))),
    );
    throw new TracelabError(
      'EIO',
      `${path}:${lineNo}: not a trace batch: ${where}: ${issue?.message ?? 'invalid'}`,
      { line: lineNo },
    );
  }
  return parsed.data;
}

/** Runs a file system call; its failure becomes a TracelabError with the same errno name. */
function fsCall<T>(fn: () => T, path: string): T {
  try {
    return fn();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const errno: ErrnoCode = code !== undefined && code in ERRNO ? (code as ErrnoCode) : 'EIO';
    throw new TracelabError(errno, `${path}: ${(err as Error).message}`);
  }
}
