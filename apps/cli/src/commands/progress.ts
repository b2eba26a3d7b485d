import { Presets, SingleBar } from 'cli-progress';

/** The part of a stream a progress bar needs: where to write and whether a person is watching. */
export type ProgressStream = NodeJS.WritableStream & { isTTY?: boolean };

/**
 * A bar over the steps of long work (reading a vmlinux BTF into a kernel image, attaching to
 * thousands of functions), on stderr and only when stderr is a terminal, so pipes and tests see
 * nothing. The layers report no progress inside one step, so the bar advances per step.
 */
export class Progress {
  private readonly bar: SingleBar | null;
  private done = 0;

  constructor(
    readonly steps: number,
    enabled: boolean,
    stream: ProgressStream = process.stderr,
  ) {
    this.bar =
      enabled && stream.isTTY === true
        ? new SingleBar(
            { stream, format: '{bar} {value}/{total} {step}', clearOnComplete: true },
            Presets.shades_classic,
          )
        : null;
    this.bar?.start(steps, 0, { step: '' });
  }

  /**
   * Runs one step under its label; the bar is drawn before the step, which blocks the loop when
   * it runs in this process (a remote step awaits).
   */
  async step<T>(label: string, work: () => T | Promise<T>): Promise<T> {
    if (this.bar !== null) {
      this.bar.update(this.done, { step: label });
      this.bar.render();
    }
    let out: T;
    try {
      out = await work();
    } catch (err) {
      // the error message goes to the same terminal: leave it a clean line
      this.stop();
      throw err;
    }
    this.done++;
    this.bar?.update(this.done);
    return out;
  }

  stop(): void {
    this.bar?.stop();
  }
}
