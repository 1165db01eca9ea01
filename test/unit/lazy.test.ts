import { describe, expect, it } from "vitest";
import { lazyPort } from "../../core/util/lazy.ts";

interface Counter {
  add(by: number): Promise<number>;
  total(): Promise<number>;
}

class MemoryCounter implements Counter {
  private value = 0;
  async add(by: number) {
    this.value += by;
    return this.value;
  }
  async total() {
    return this.value;
  }
}

describe("lazyPort", () => {
  it("loads the implementation on the first call, once, even when the first calls race", async () => {
    let loads = 0;
    const port: Counter = lazyPort(async () => {
      loads++;
      await new Promise((resolve) => setTimeout(resolve, 10));
      return new MemoryCounter();
    });
    expect(loads).toBe(0);
    await Promise.all([port.add(1), port.add(2), port.add(3)]);
    expect(await port.total()).toBe(6);
    expect(loads).toBe(1);
  });

  it("tries the load again after it failed, and passes method errors through", async () => {
    let attempts = 0;
    const port: Counter = lazyPort(async () => {
      if (++attempts === 1) throw new Error("transient import failure");
      return {
        add: async () => {
          throw new RangeError("too much");
        },
        total: async () => 7,
      };
    });
    await expect(port.total()).rejects.toThrow("transient import failure");
    expect(await port.total()).toBe(7);
    await expect(port.add(1)).rejects.toThrow(RangeError);
    expect(attempts).toBe(2);
  });

  it("is not mistaken for a promise", async () => {
    const port: Counter = lazyPort(async () => new MemoryCounter());
    const awaited = await port;
    expect(awaited).toBe(port);
  });
});
