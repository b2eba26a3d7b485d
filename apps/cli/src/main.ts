#!/usr/bin/env node
import { buildProgram } from './program.js';

// `tracelab btf dump vmlinux | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    const e = err as { code?: unknown; message?: string };
    const message = e.message ?? String(err);
    // errors whose message does not already start with their errno name get it prefixed
    const prefix = typeof e.code === 'string' && !message.startsWith(e.code) ? `${e.code}: ` : '';
    console.error(`tracelab: ${prefix}${message}`);
    process.exitCode = 1;
  });
