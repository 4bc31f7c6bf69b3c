// Assertions shared by the compat programs: each names what the SDK returned.
import assert from "node:assert/strict";

export const url = process.env.MOCK_URL;
export { assert };

// Run the named steps in order; the first failure ends the program with exit 1.
export async function steps(list) {
  for (const [name, fn] of list) {
    try {
      await fn();
    } catch (e) {
      console.error(`${name}: ${e.stack || e}`);
      process.exit(1);
    }
  }
}

// Sum of squares of a vector: 1 for the mock's unit vectors.
export function norm2(v) {
  return v.reduce((s, x) => s + x * x, 0);
}
