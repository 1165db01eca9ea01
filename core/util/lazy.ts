/** An object whose methods all answer promises: a port that can be loaded on its first call. */
type AsyncPort<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => Promise<infer R> ? (...args: A) => Promise<R> : never;
};

/**
 * A port whose implementation (and the code it imports) loads on the first method call. Lambda handlers
 * use it for adapters only some requests need, so a cold start does not parse them. Every method of the
 * port must be async: a synchronous one could not wait for the load.
 */
export function lazyPort<T extends AsyncPort<T>>(load: () => Promise<T>): T {
  let loading: Promise<T> | undefined;
  const target = () => {
    loading ??= load().catch((error: unknown) => {
      loading = undefined; // a failed load (e.g. a transient import error) is tried again next call
      throw error;
    });
    return loading;
  };
  return new Proxy({} as T, {
    get(_, name) {
      // Not a thenable: `await port` must give the port, not try to call a `then` method on it.
      if (name === "then") return undefined;
      return async (...args: unknown[]) => {
        const port = await target();
        const method = port[name as keyof T] as unknown;
        if (typeof method !== "function") throw new TypeError(`${String(name)} is not a method of this port`);
        return method.apply(port, args);
      };
    },
  });
}
