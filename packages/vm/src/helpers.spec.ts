import { describe, expect, it } from 'vitest';
import { HELPER_PROTOS, type KernelEnv, installHelpers } from './helpers.js';
import { AddressSpace } from './memory.js';
import { MapTable } from './table.js';
import { Vm } from './vm.js';

const env: KernelEnv = {
  ktimeGetNs: () => undefined,
  smpProcessorId: () => 0,
  currentPidTgid: () => undefined,
  currentComm: () => new Uint8Array(0),
  currentTask: () => undefined,
  stack: () => [],
  tracePrintk: () => undefined,
  prandomU32: () => 0,
};

/** BPF_FUNC_tail_call: the interpreter runs it itself through vm.tailCall. */
const TAIL_CALL = 12;

describe('HELPER_PROTOS', () => {
  it('lists each helper id once, in enum bpf_func_id order', () => {
    const ids = HELPER_PROTOS.map((h) => h.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('marks exactly the helpers installHelpers gives the vm a body for', () => {
    const memory = new AddressSpace();
    const vm = Vm.create({ memory }) as Vm;
    installHelpers(vm, new MapTable(memory), env);
    const installed = vm.helpers.flatMap((fn, id) => (fn === undefined ? [] : [id]));
    const implemented = HELPER_PROTOS.filter((h) => h.implemented && h.id !== TAIL_CALL);
    expect(installed).toEqual(implemented.map((h) => h.id));
    expect(HELPER_PROTOS.find((h) => h.id === TAIL_CALL)?.implemented).toBe(true);
  });

  it('has the kernel prototypes of helpers the vm does not implement', () => {
    const byName = new Map(HELPER_PROTOS.map((h) => [h.name, h]));
    // bpf_get_current_task_btf: RET_PTR_TO_BTF_ID_TRUSTED to the task_struct tracing id.
    expect(byName.get('get_current_task_btf')).toEqual({
      id: 158,
      name: 'get_current_task_btf',
      args: [],
      ret: 'RET_PTR_TO_BTF_ID_TRUSTED',
      retBtf: 'task_struct',
      implemented: false,
    });
    expect(byName.get('get_func_arg')?.args).toEqual([
      'ARG_PTR_TO_CTX',
      'ARG_ANYTHING',
      'ARG_PTR_TO_LONG',
    ]);
    // bpf_trace_printk_proto checks the format and its size; the values are ARG_DONTCARE.
    expect(byName.get('trace_printk')?.args).toEqual(['ARG_PTR_TO_MEM', 'ARG_CONST_SIZE']);
  });
});
