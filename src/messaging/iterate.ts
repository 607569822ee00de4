/** `for await` over a Connection or a queue: each value `next()` gives, until it fails with one of `endCodes`. */
export async function* untilEnd<T>(next: () => Promise<T>, endCodes: readonly string[]): AsyncGenerator<T, void, undefined> {
  for (;;) {
    let value: T;
    try {
      value = await next();
    } catch (error) {
      if (endCodes.includes((error as { code?: string }).code ?? '')) return;
      throw error;
    }
    yield value;
  }
}
