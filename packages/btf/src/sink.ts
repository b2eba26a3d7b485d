const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Characters gathered before they are encoded in one call. */
const FLUSH_AT = 1 << 16;

/**
 * Accumulates text as UTF-8 bytes. Large dumps built by joining strings keep every
 * piece alive until the end, which makes the garbage collector dominate; here each
 * piece dies young. Small writes are gathered first, since each encode is a native call.
 */
export class TextSink {
  private buf = new Uint8Array(1 << 20);
  private len = 0;
  private pending = '';

  write(text: string): void {
    this.pending += text;
    if (this.pending.length >= FLUSH_AT) this.flush();
  }

  private flush(): void {
    const text = this.pending;
    this.pending = '';
    // Worst case 3 bytes per UTF-16 unit.
    if (this.len + text.length * 3 > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, this.len + text.length * 3));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.len += encoder.encodeInto(text, this.buf.subarray(this.len)).written;
  }

  toString(): string {
    this.flush();
    return decoder.decode(this.buf.subarray(0, this.len));
  }
}
