/** An unbounded push queue read with `for await`; `end()` finishes the iteration once drained. */
export class AsyncQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #waiters: Array<(result: IteratorResult<T>) => void> = [];
  #ended = false;
  readonly #onReturn: () => void;

  /** `onReturn` runs when the reader stops early (break/return in `for await`). */
  constructor(onReturn: () => void) {
    this.#onReturn = onReturn;
  }

  push(item: T): void {
    if (this.#ended) return;
    const waiter = this.#waiters.shift();
    if (waiter) waiter({ value: item, done: false });
    else this.#items.push(item);
  }

  end(): void {
    this.#ended = true;
    for (const waiter of this.#waiters) waiter({ value: undefined, done: true });
    this.#waiters = [];
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.#items.length > 0) {
          return Promise.resolve({ value: this.#items.shift() as T, done: false });
        }
        if (this.#ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.#waiters.push(resolve));
      },
      return: () => {
        this.#onReturn();
        this.end();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
