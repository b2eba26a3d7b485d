import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ARCHES, archInfo, isArchName, type ArchName } from './arch.js';

interface Fixture {
  ptRegs: Record<ArchName, { size: number; offsets: Record<string, number> }>;
  ftraceRegs: Record<'arm64' | 'riscv64', { size: number; offsets: Record<string, number> }>;
}
const fx = JSON.parse(
  readFileSync(new URL('./testdata/layouts.json', import.meta.url), 'utf8'),
) as Fixture;

describe('kernel struct layouts', () => {
  it.each(ARCHES)('%s pt_regs offsets', (arch) => {
    const want = fx.ptRegs[arch];
    const layout = archInfo(arch).ptRegs;
    expect(layout.size).toBe(want.size);
    for (const [name, off] of Object.entries(want.offsets)) {
      expect(layout.fields[layout.index.get(name) ?? -1]?.offset, name).toBe(off);
    }
  });

  it.each(['arm64', 'riscv64'] as const)('%s ftrace_regs offsets', (arch) => {
    const want = fx.ftraceRegs[arch];
    const layout = archInfo(arch).ftraceRegs;
    expect(layout.size).toBe(want.size);
    for (const [name, off] of Object.entries(want.offsets)) {
      expect(layout.fields[layout.index.get(name) ?? -1]?.offset, name).toBe(off);
    }
  });

  it.each(ARCHES)('%s fields do not overlap and fit the struct', (arch) => {
    for (const layout of [archInfo(arch).ptRegs, archInfo(arch).ftraceRegs]) {
      let end = 0;
      for (const f of layout.fields) {
        expect(f.offset).toBeGreaterThanOrEqual(end);
        expect(f.offset % f.size).toBe(0);
        end = f.offset + f.size;
      }
      expect(end).toBeLessThanOrEqual(layout.size);
    }
  });

  it.each(ARCHES)('%s roles name real fields and registers have widths', (arch) => {
    const info = archInfo(arch);
    for (const [layout, roles] of [
      [info.ptRegs, info.ptRoles],
      [info.ftraceRegs, info.ftraceRoles],
    ] as const) {
      const names = [roles.ip, roles.sp, roles.fp, ...roles.args, ...roles.ret];
      if (roles.lr !== null) names.push(roles.lr);
      if (roles.direct !== null) names.push(roles.direct);
      for (const n of names) expect(layout.index.has(n), `${arch} ${n}`).toBe(true);
    }
    expect(info.registers.every((r) => [16, 32, 64].includes(r.bits))).toBe(true);
    expect(info.wordSize).toBe(arch === 'i386' ? 4 : 8);
  });

  it('capabilities follow the kernel Kconfig', () => {
    expect(archInfo('arm64').capabilities).toMatchObject({ withRegs: false, callOps: true });
    expect(archInfo('riscv64').capabilities.withRegs).toBe(false);
    expect(archInfo('x86_64').capabilities).toMatchObject({ withArgs: true, withRegs: true });
    expect(archInfo('i386').capabilities).toMatchObject({ withArgs: false, directCalls: false });
  });

  it('knows arch names', () => {
    expect(isArchName('riscv64')).toBe(true);
    expect(isArchName('mips')).toBe(false);
    expect(isArchName('toString')).toBe(false);
  });
});
