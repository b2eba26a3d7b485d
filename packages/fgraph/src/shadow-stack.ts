/**
 * The per-task shadow stack of fgraph (kernel/trace/fgraph.c): 512 words of 8 bytes, growing up.
 * A frame is the return record (ret, func, calltime, retp), a bitmap marker word, then for each
 * user that reserved data its words followed by a data marker. The word below the top of the
 * stack is always a marker whose offset leads back to the frame's return record. The top 16 words
 * hold one task variable per graph user.
 *
 * Words are kept as 32-bit halves (lo at 2*i, hi at 2*i+1) so the traced call never builds a
 * bigint; addresses are stored in full so the unwinder and tests see real kernel addresses.
 */

/** Words of the shadow stack (SHADOW_STACK_SIZE / sizeof(long) on 64-bit). */
export const SHADOW_STACK_WORDS = 512;
/** Bytes of the shadow stack: one page. */
export const SHADOW_STACK_SIZE = SHADOW_STACK_WORDS * 8;
/** Graph users (FGRAPH_ARRAY_SIZE), one bit each in the bitmap marker. */
export const FGRAPH_ARRAY_SIZE = 16;
/** Words of the return record: ret, func, calltime, retp (FGRAPH_FRAME_OFFSET). */
export const FGRAPH_FRAME_OFFSET = 4;
/** First task-variable word. */
export const SHADOW_STACK_TASK_VARS = SHADOW_STACK_WORDS - FGRAPH_ARRAY_SIZE;
/** Pushes stop below this index, leaving room for one frame header and the task variables. */
export const SHADOW_STACK_MAX_OFFSET =
  SHADOW_STACK_WORDS - (FGRAPH_FRAME_OFFSET + 1 + FGRAPH_ARRAY_SIZE);
/** Largest reservation in words (FGRAPH_MAX_DATA_SIZE / sizeof(long)). */
export const FGRAPH_MAX_DATA_WORDS = 32;

// Marker word encoding.
export const FGRAPH_FRAME_OFFSET_BITS = 10;
export const FGRAPH_FRAME_OFFSET_MASK = (1 << FGRAPH_FRAME_OFFSET_BITS) - 1;
export const FGRAPH_TYPE_SHIFT = 10;
export const FGRAPH_TYPE_MASK = 3;
export const FGRAPH_TYPE_RESERVED = 0;
export const FGRAPH_TYPE_BITMAP = 1;
export const FGRAPH_TYPE_DATA = 2;
export const FGRAPH_INDEX_SHIFT = 12;
export const FGRAPH_INDEX_MASK = 0xffff;
export const FGRAPH_DATA_SHIFT = 12;
export const FGRAPH_DATA_MASK = 0x1f;
export const FGRAPH_DATA_INDEX_SHIFT = 17;
export const FGRAPH_DATA_INDEX_MASK = 0xf;
/**
 * The kernel sets bitmap bit 0 on every committed frame (its tail-call check), so bit 0 alone
 * cannot say whether user 0 asked for its return callback. tracelab keeps that answer in bit 28,
 * just above the 16-bit bitmap, and calls user 0 only when it is set.
 */
export const FGRAPH_IDX0_WANTS = 1 << 28;

// Return record fields, in words from the frame start.
export const RET_STACK_RET = 0;
export const RET_STACK_FUNC = 1;
export const RET_STACK_CALLTIME = 2;
export const RET_STACK_RETP = 3;

/** A bitmap marker: which users want the return callback. */
export function makeBitmapMarker(bitmap: number): number {
  return (
    ((bitmap & FGRAPH_INDEX_MASK) << FGRAPH_INDEX_SHIFT) |
    (FGRAPH_TYPE_BITMAP << FGRAPH_TYPE_SHIFT) |
    FGRAPH_FRAME_OFFSET
  );
}

/** A data marker for `words` words of user `idx`, `offset` words above the frame start. */
export function makeDataMarker(idx: number, words: number, offset: number): number {
  return (
    (idx << FGRAPH_DATA_INDEX_SHIFT) |
    ((words - 1) << FGRAPH_DATA_SHIFT) |
    (FGRAPH_TYPE_DATA << FGRAPH_TYPE_SHIFT) |
    offset
  );
}

export function markerOffset(val: number): number {
  return val & FGRAPH_FRAME_OFFSET_MASK;
}

export function markerType(val: number): number {
  return (val >>> FGRAPH_TYPE_SHIFT) & FGRAPH_TYPE_MASK;
}

export function markerBitmap(val: number): number {
  return (val >>> FGRAPH_INDEX_SHIFT) & FGRAPH_INDEX_MASK;
}

/** Words of a data marker (its size-1 field plus one). */
export function markerDataWords(val: number): number {
  return ((val >>> FGRAPH_DATA_SHIFT) & FGRAPH_DATA_MASK) + 1;
}

export function markerDataIndex(val: number): number {
  return (val >>> FGRAPH_DATA_INDEX_SHIFT) & FGRAPH_DATA_INDEX_MASK;
}

/** One task's shadow stack (task->ret_stack with curr_ret_stack, curr_ret_depth, overrun). */
export class ShadowStack {
  declare readonly buffer: ArrayBuffer;
  /** Word i is u32[2i] (low half) and u32[2i+1] (high half). */
  declare readonly u32: Uint32Array;
  /** The same halves as int32s, the traced call's view (see PtRegs.i32 in arch-isa). */
  declare readonly i32: Int32Array;
  /** Word i as a double, for calltime (simulated nanoseconds). */
  declare readonly f64: Float64Array;
  /** The same bytes, for users that store bytes or 64-bit values in reserved data. */
  declare readonly view: DataView;
  /** curr_ret_stack: index of the first free word. */
  curr = 0;
  /** curr_ret_depth: depth of the innermost frame, -1 when empty. */
  depth = -1;
  /** trace_overrun: pushes refused because the stack was full. */
  overrun = 0;
  /**
   * True between the push of a frame and the hook of its return address: the unwinder must not
   * match that frame with a return_to_handler found on the real stack.
   */
  entering = false;

  constructor() {
    this.buffer = new ArrayBuffer(SHADOW_STACK_SIZE);
    this.u32 = new Uint32Array(this.buffer);
    this.i32 = new Int32Array(this.buffer);
    this.f64 = new Float64Array(this.buffer);
    this.view = new DataView(this.buffer);
  }

  lo(word: number): number {
    return this.u32[word * 2] as number;
  }

  hi(word: number): number {
    return this.u32[word * 2 + 1] as number;
  }

  setWord(word: number, lo: number, hi: number): void {
    this.u32[word * 2] = lo;
    this.u32[word * 2 + 1] = hi;
  }

  /** Word i as an unsigned 64-bit bigint (control plane and tests). */
  word(i: number): bigint {
    return (BigInt(this.hi(i)) << 32n) | BigInt(this.lo(i));
  }

  /** The task variable of user idx (fgraph_get_task_var), as its low 32 bits. */
  taskVar(idx: number): number {
    return this.lo(SHADOW_STACK_TASK_VARS + idx);
  }

  setTaskVar(idx: number, value: number): void {
    this.setWord(SHADOW_STACK_TASK_VARS + idx, value >>> 0, 0);
  }

  /**
   * get_ret_stack(): the frame start below the marker at `top - 1`, or -1 when `top` is the
   * bottom or the marker does not lead to a frame.
   */
  frameBelow(top: number): number {
    if (top <= 0) return -1;
    const offs = markerOffset(this.lo(top - 1));
    if (offs <= 0 || offs > top - 1) return -1;
    return top - 1 - offs;
  }

  /** Frames on the stack, innermost first (their start indices). */
  frames(): number[] {
    const out: number[] = [];
    for (let f = this.frameBelow(this.curr); f >= 0; f = this.frameBelow(f)) out.push(f);
    return out;
  }

  /** The return address saved in the frame starting at `frame`. */
  frameRet(frame: number): bigint {
    return this.word(frame + RET_STACK_RET);
  }
}
