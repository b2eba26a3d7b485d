import { ARCHES, type ArchName } from '@tracelab/arch-isa';
import {
  BUILTIN_WORKLOADS,
  parseWorkloadText,
  replayWorkload,
  type WorkloadSpec,
} from '@tracelab/kernel';
import { InvalidArgumentError } from 'commander';
import { readInput } from './input.js';

/** Layer results are error values; the CLI turns them back into thrown errors at its edge. */
export function unwrap<T>(value: T): Exclude<T, Error> {
  if (value instanceof Error) throw value;
  return value as Exclude<T, Error>;
}

export function arch(value: string): ArchName {
  const a = ARCHES.find((x) => x === value);
  if (!a) throw new InvalidArgumentError(`expected one of ${ARCHES.join(', ')}`);
  return a;
}

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function seed(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
    throw new InvalidArgumentError('expected an integer from 0 to 2^32-1');
  return n;
}

const decoder = new TextDecoder();

/** A built-in workload's name, a JSON/YAML workload file, or (replay) a function_graph trace. */
export function workloadSpec(workload: string, replay: boolean): string | WorkloadSpec {
  if (replay) return unwrap(replayWorkload(decoder.decode(readInput(workload)), workload));
  if ((BUILTIN_WORKLOADS as readonly string[]).includes(workload)) return workload;
  return unwrap(parseWorkloadText(decoder.decode(readInput(workload)), workload));
}

export const WORKLOAD_HELP = `a built-in workload (${BUILTIN_WORKLOADS.join(', ')}) or a JSON/YAML workload file`;
