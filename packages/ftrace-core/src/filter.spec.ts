import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  FilterTable,
  FtraceHash,
  MATCH_END_ONLY,
  MATCH_FRONT_ONLY,
  MATCH_FULL,
  MATCH_GLOB,
  MATCH_INDEX,
  MATCH_MIDDLE_ONLY,
  filterParseRegex,
  formatFilter,
  globMatch,
  writeFilter,
  type FilterFunction,
  type FtraceCommand,
} from './filter.js';
import { FtraceError } from './errors.js';

const load = <T>(name: string): T =>
  JSON.parse(readFileSync(new URL(`./testdata/${name}`, import.meta.url), 'utf8')) as T;

interface Case {
  name: string;
  writes: { text: string; append?: boolean; error?: string }[];
  set: string[];
  read?: string;
}

const functions = load<FilterFunction[]>('filter-functions.json');
const table = new FilterTable(functions);
const names = (h: FtraceHash): string[] =>
  h
    .ids()
    .map((id) => functions.find((f) => f.id === id)?.name as string)
    .sort();

describe('set_ftrace_filter expressions (testdata/filter-cases.json)', () => {
  const { cases } = load<{ cases: Case[] }>('filter-cases.json');
  for (const c of cases) {
    it(c.name, () => {
      const hash = new FtraceHash(table.idLimit);
      for (const w of c.writes) {
        const err = writeFilter(hash, table, w.text, { append: w.append === true });
        if (w.error === undefined) expect(err).toBeNull();
        else {
          expect(err).toBeInstanceOf(FtraceError);
          expect(err?.code).toBe(w.error);
        }
      }
      expect(names(hash)).toEqual([...c.set].sort());
      if (c.read !== undefined) expect(formatFilter(hash, table, true)).toBe(c.read);
    });
  }
});

describe('filterParseRegex', () => {
  it.each([
    ['foo', MATCH_FULL, 'foo', false],
    ['foo*', MATCH_FRONT_ONLY, 'foo', false],
    ['*foo', MATCH_END_ONLY, 'foo', false],
    ['*foo*', MATCH_MIDDLE_ONLY, 'foo', false],
    ['f*o', MATCH_GLOB, 'f*o', false],
    ['f?o', MATCH_GLOB, 'f?o', false],
    ['!foo*', MATCH_FRONT_ONLY, 'foo', true],
    ['12', MATCH_INDEX, '12', false],
    ['!3', MATCH_INDEX, '3', true],
    ['*', MATCH_END_ONLY, '', false],
  ] as const)('%s', (word, type, search, not) => {
    expect(filterParseRegex(word)).toEqual({ type, search, not });
  });
});

describe('globMatch', () => {
  it('agrees with prefix/suffix/substring matching for plain words', () => {
    const word = fc.stringMatching(/^[a-c_]{0,6}$/);
    fc.assert(
      fc.property(word, word, (w, s) => {
        expect(globMatch(`${w}*`, s)).toBe(s.startsWith(w));
        expect(globMatch(`*${w}`, s)).toBe(s.endsWith(w));
        expect(globMatch(`*${w}*`, s)).toBe(s.includes(w));
        expect(globMatch(w, s)).toBe(s === w);
      }),
    );
  });
  it('handles classes, escapes and backtracking', () => {
    expect(globMatch('a*b*c', 'aXbYbZc')).toBe(true);
    expect(globMatch('a*b*c', 'aXbYbZ')).toBe(false);
    expect(globMatch('[]]x', ']x')).toBe(true);
    expect(globMatch('[!a-c]x', 'dx')).toBe(true);
    expect(globMatch('[!a-c]x', 'bx')).toBe(false);
    expect(globMatch('a\\*', 'a*')).toBe(true);
    expect(globMatch('a\\*', 'ab')).toBe(false);
    expect(globMatch('[ab', '[ab')).toBe(false);
  });
});

describe('reading the filter files', () => {
  it('prints all functions enabled for an empty filter and nothing for an empty notrace', () => {
    const h = new FtraceHash(table.idLimit);
    expect(formatFilter(h, table, true)).toBe('#### all functions enabled ####\n');
    expect(formatFilter(h, table, false)).toBe('');
  });
  it('prints members in available_filter_functions order with their module', () => {
    const h = new FtraceHash(table.idLimit);
    expect(writeFilter(h, table, 'virtnet_open ext4_readdir schedule')).toBeNull();
    expect(formatFilter(h, table, true)).toBe(
      'schedule\next4_readdir [ext4]\nvirtnet_open [virtio_net]\n',
    );
  });
  it('available_filter_functions lists every function with its module', () => {
    const lines = table.format().trimEnd().split('\n');
    expect(lines).toHaveLength(14);
    expect(lines[0]).toBe('schedule');
    expect(lines[13]).toBe('virtnet_open [virtio_net]');
  });
});

describe('commands', () => {
  it('passes func, param and enable to a registered command', () => {
    const seen: unknown[] = [];
    const cmd: FtraceCommand = {
      name: 'traceoff',
      run: (_h, _t, func, param, enable) => {
        seen.push([func, param, enable]);
        return null;
      },
    };
    const h = new FtraceHash(table.idLimit);
    const err = writeFilter(h, table, 'schedule:traceoff:5 vfs_read:traceoff', {
      commands: new Map([[cmd.name, cmd]]),
    });
    expect(err).toBeNull();
    expect(seen).toEqual([
      ['schedule', '5', true],
      ['vfs_read', null, true],
    ]);
  });
  it('names the failing word and its offset', () => {
    const h = new FtraceHash(table.idLimit);
    const err = writeFilter(h, table, 'schedule  nosuch');
    expect(err?.message).toContain("'nosuch'");
    expect(err?.details?.offset).toBe(10);
    expect(err?.errno).toBe(-22);
  });
  it('rejects a mod command without a module', () => {
    const h = new FtraceHash(table.idLimit);
    expect(writeFilter(h, table, 'schedule:mod')?.code).toBe('EINVAL');
  });
});
