import { describe, expect, it } from 'vitest';
import {
  BTF_FMODEL_SIGNED_ARG as SIGNED,
  BTF_FMODEL_STRUCT_ARG as STRUCT,
  funcModel,
  funcModelKey,
  summarizeFuncModels,
} from './func-model.js';
import { BtfBuilder } from './write.js';

/** A small kernel-like BTF with one function per case in the table below. */
function fixture() {
  const b = new BtfBuilder();
  const int = b.int('int', 4, { signed: true });
  const uint = b.int('unsigned int', 4);
  const u8 = b.int('unsigned char', 1, { char: true });
  const long = b.int('long', 8, { signed: true });
  const i128 = b.int('__int128', 16, { signed: true });
  const bool = b.int('_Bool', 1, { bool: true });
  const dbl = b.float('double', 8);
  const sizeT = b.typedef('size_t', b.int('unsigned long', 8));
  const cint = b.const(int);
  const vptr = b.ptr(0);
  const pair = b.struct('pair', [
    { name: 'a', type: long },
    { name: 'b', type: long },
  ]);
  const big = b.struct('big', [
    { name: 'a', type: long },
    { name: 'b', type: long },
    { name: 'c', type: long },
  ]);
  const un = b.union('u8_or_int', [
    { name: 'x', type: u8 },
    { name: 'y', type: int },
  ]);
  const e = b.enum('state', [
    ['A', 0],
    ['B', 1],
  ]);
  const arr = b.array(int, 4);
  const proto0 = b.funcProto(int, []);
  const fnptr = b.ptr(proto0);
  const fns = {
    plain: b.function('plain', int, [
      { name: 'x', type: int },
      { name: 'p', type: vptr },
    ]),
    void_ret: b.function('void_ret', 0, [sizeT]),
    unsigned_ret: b.function('unsigned_ret', uint, [u8, bool]),
    cv: b.function('cv', cint, [cint, b.typedef('state_t', e)]),
    struct_arg: b.function('struct_arg', long, [pair, un]),
    i128_arg: b.function('i128_arg', long, [i128]),
    fn_ptr_arg: b.function('fn_ptr_arg', 0, [fnptr]),
    twelve: b.function('twelve', 0, new Array<number>(12).fill(long)),
    thirteen: b.function('thirteen', 0, new Array<number>(13).fill(long)),
    struct_ret: b.function('struct_ret', pair, []),
    union_ret: b.function('union_ret', un, []),
    float_ret: b.function('float_ret', dbl, []),
    variadic: b.function('variadic', int, [b.ptr(u8)], { variadic: true }),
    big_arg: b.function('big_arg', 0, [big]),
    float_arg: b.function('float_arg', 0, [int, dbl]),
    array_arg: b.function('array_arg', 0, [arr]),
    void_arg: b.function('void_arg', 0, [int, { name: 'v', type: 0 }, int]),
  };
  return { btf: b.build(), fns, proto0 };
}

describe('funcModel (btf_distill_func_proto)', () => {
  const { btf, fns, proto0 } = fixture();

  it.each([
    ['plain', 4, SIGNED, [4, 8], [SIGNED, 0]],
    ['void_ret', 0, 0, [8], [0]],
    ['unsigned_ret', 4, 0, [1, 1], [0, 0]],
    ['cv', 4, SIGNED, [4, 4], [SIGNED, 0]],
    ['struct_arg', 8, SIGNED, [16, 4], [STRUCT, STRUCT]],
    ['i128_arg', 8, SIGNED, [16], [SIGNED]],
    ['fn_ptr_arg', 0, 0, [8], [0]],
    ['twelve', 0, 0, new Array<number>(12).fill(8), new Array<number>(12).fill(SIGNED)],
  ] as const)('%s: ret %d/%d args %j flags %j', (name, retSize, retFlags, argSize, argFlags) => {
    const r = funcModel(btf, fns[name]);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.model).toEqual({ retSize, retFlags, nrArgs: argSize.length, argSize, argFlags });
  });

  it.each([
    ['thirteen', 'The function thirteen has 13 arguments. Too many.'],
    ['struct_ret', 'The function struct_ret return type STRUCT is unsupported.'],
    ['union_ret', 'The function union_ret return type UNION is unsupported.'],
    ['float_ret', 'The function float_ret return type FLOAT is unsupported.'],
    ['variadic', 'The function variadic with variable args is unsupported.'],
    ['big_arg', 'The function big_arg arg0 type STRUCT is unsupported.'],
    ['float_arg', 'The function float_arg arg1 type FLOAT is unsupported.'],
    ['array_arg', 'The function array_arg arg0 type ARRAY is unsupported.'],
    ['void_arg', 'The function void_arg has malformed void argument.'],
  ] as const)('%s is rejected: %s', (name, text) => {
    const r = funcModel(btf, fns[name]);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('EINVAL');
    expect(r.error.message).toContain(text);
    expect(r.error.typeId).toBe(fns[name] - 1);
  });

  it('falls back to five 8-byte args without a prototype', () => {
    const r = funcModel(btf, null);
    expect(r).toEqual({
      ok: true,
      model: {
        retSize: 8,
        retFlags: 0,
        nrArgs: 5,
        argSize: [8, 8, 8, 8, 8],
        argFlags: [0, 0, 0, 0, 0],
      },
    });
  });

  it('accepts a FUNC_PROTO id with a caller-supplied name', () => {
    const r = funcModel(btf, proto0, 'anon');
    expect(r.ok && r.model.nrArgs).toBe(0);
  });

  it('rejects ids that are not functions', () => {
    const r = funcModel(btf, 1);
    expect(r.ok).toBe(false);
  });

  it('uses the BTF pointer size for pointers', () => {
    const b = new BtfBuilder({ ptrSize: 4 });
    const f = b.function('f', b.ptr(0), [b.ptr(0)]);
    const r = funcModel(b.build(), f);
    expect(r.ok && r.model.argSize).toEqual([4]);
    expect(r.ok && r.model.retSize).toBe(4);
  });

  it('keys equal models equally and different ones differently', () => {
    const m = (id: number) => {
      const r = funcModel(btf, id);
      if (!r.ok) throw r.error;
      return funcModelKey(r.model);
    };
    expect(m(fns.plain)).not.toBe(m(fns.cv));
    expect(m(fns.void_ret)).toBe(m(fns.fn_ptr_arg));
  });

  it('summarises all functions with rejection reasons', () => {
    const s = summarizeFuncModels(btf);
    expect(s.functions).toBe(Object.keys(fns).length);
    expect(s.modeled).toBe(8);
    expect(s.rejected).toBe(9);
    expect(s.rejectedBy['has >12 arguments. Too many.']).toBe(1);
    expect(s.rejectedBy['argN type STRUCT is unsupported.']).toBe(1);
    expect(s.structArgs).toBe(1);
    expect(s.maxArgs).toBe(12);
  });
});

describe('pointer size of the target', () => {
  it('follows the C long of a 32-bit BTF when not given', async () => {
    const { parseBtf } = await import('./btf.js');
    const b = new BtfBuilder({ ptrSize: 4 });
    b.int('long int', 4, { signed: true });
    const f = b.function('f', b.ptr(0), [b.ptr(0), b.int('long long', 8, { signed: true })]);
    const btf = parseBtf(b.write());
    expect(btf.ptrSize).toBe(4);
    const r = funcModel(btf, f);
    expect(r.ok && r.model).toEqual({
      retSize: 4,
      retFlags: 0,
      nrArgs: 2,
      argSize: [4, 8],
      argFlags: [0, SIGNED],
    });
  });

  it('defaults to 8 when the BTF has no long', async () => {
    const { parseBtf } = await import('./btf.js');
    expect(parseBtf(new BtfBuilder().write()).ptrSize).toBe(8);
  });
});

describe('funcModel on malformed BTF', () => {
  it('returns ENOENT for a FUNC whose prototype id is out of range', async () => {
    const { parseBtf } = await import('./btf.js');
    const { writeBtf } = await import('./write.js');
    const btf = parseBtf(writeBtf([{ kind: 'func', name: 'f', type: 99, linkage: 1 }]));
    const r = funcModel(btf, 1);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.code).toBe('ENOENT');
    expect(funcModel(btf, 7).ok).toBe(false);
  });
});
