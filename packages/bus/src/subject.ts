import { BusError } from './errors.js';

/** Subject prefixes NATS keeps for itself (JetStream API, KV, services, system account). */
export const RESERVED_SUBJECT_PREFIXES = ['$JS', '$KV', '$SRV', '$SYS'] as const;

const WHITESPACE = /\s/;
const NAME_FORBIDDEN = /[\s.*>/\\]/;

export type SubjectUse = 'publish' | 'subscribe';

/**
 * Throws BusError EINVAL unless `subject` is a valid NATS subject for `use`: non-empty `.`-separated
 * tokens without whitespace; for subscribe, `*` as a whole token and `>` as the whole last token.
 * Wildcard characters inside a token are refused even though NATS would read them literally,
 * because such subjects are almost always a mistake.
 */
export function validateSubject(subject: string, use: SubjectUse): void {
  if (typeof subject !== 'string' || subject.length === 0) {
    throw new BusError('EINVAL', 'subject must be a non-empty string');
  }
  if (WHITESPACE.test(subject)) {
    throw new BusError('EINVAL', `subject "${subject}" contains whitespace`);
  }
  const tokens = subject.split('.');
  tokens.forEach((token, i) => {
    if (token.length === 0) {
      throw new BusError('EINVAL', `subject "${subject}" has an empty token`);
    }
    const wildcard = token === '*' || token === '>';
    if (!wildcard && (token.includes('*') || token.includes('>'))) {
      throw new BusError('EINVAL', `subject "${subject}": wildcards must be whole tokens`);
    }
    if (wildcard && use === 'publish') {
      throw new BusError('EINVAL', `subject "${subject}": cannot publish to a wildcard subject`);
    }
    if (token === '>' && i !== tokens.length - 1) {
      throw new BusError('EINVAL', `subject "${subject}": ">" must be the last token`);
    }
  });
  const first = tokens[0];
  if ((RESERVED_SUBJECT_PREFIXES as readonly string[]).includes(first)) {
    throw new BusError('EINVAL', `subject "${subject}" uses the reserved prefix ${first}`);
  }
}

/** Stream and durable consumer names: JetStream refuses `.`, wildcards, whitespace and path separators. */
export function validateName(name: string, what: string): void {
  if (typeof name !== 'string' || name.length === 0 || NAME_FORBIDDEN.test(name)) {
    throw new BusError(
      'EINVAL',
      `${what} "${name}" must be non-empty, without whitespace, ".", "*", ">", "/" or "\\"`,
    );
  }
}

export function validateQueue(queue: string): void {
  if (typeof queue !== 'string' || queue.length === 0 || WHITESPACE.test(queue)) {
    throw new BusError('EINVAL', `queue group "${queue}" must be non-empty, without whitespace`);
  }
}

/** Whether a literal subject matches a subscription pattern. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== '*' && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

/** Whether some subject matches both patterns (JetStream refuses streams whose subjects overlap). */
export function patternsOverlap(a: string, b: string): boolean {
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] === '>' || y[i] === '>') return true;
    if (x[i] !== '*' && y[i] !== '*' && x[i] !== y[i]) return false;
  }
  return x.length === y.length;
}
