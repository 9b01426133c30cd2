// At most `size` pieces of work in flight at once; the rest wait their turn in order.
export class Slots {
  private busy = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly size: number) {
    if (!(Number.isInteger(size) && size >= 1)) throw new RangeError(`size: expected a positive integer, got ${size}`);
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.busy >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.busy++;
    try {
      return await work();
    } finally {
      // The slot passes straight to the next in line, so a newcomer cannot take it first.
      const next = this.waiting.shift();
      if (next) next();
      else this.busy--;
    }
  }
}
