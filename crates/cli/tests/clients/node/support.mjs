// Shared helpers for the Node client scenarios run against `factum serve`.
//
// Every scenario takes the server's URI as its only argument, prints each check it makes, and
// exits non-zero on the first failed check (an `assert` or an unexpected error).

import { randomUUID } from "node:crypto";

import { KurrentDBClient, jsonEvent } from "@kurrent/kurrentdb-client";

/** How long a scenario waits for one subscription event before calling it lost. */
export const WAIT_MS = 30_000;

/** A client for the URI on the command line, e.g. `kurrentdb://127.0.0.1:2113?tls=false`. */
export function connect() {
  const uri = process.argv[2];
  if (!uri) {
    console.error(`usage: node ${process.argv[1]} KURRENTDB_URI`);
    process.exit(2);
  }
  return KurrentDBClient.connectionString(uri);
}

/** A stream name (or tag) no other run has used. */
export function unique(prefix) {
  return `${prefix}-${randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** Announces the check about to be made (the harness shows this output on failure). */
export function step(text) {
  console.log(`- ${text}`);
}

/** `count` JSON events of `type`, numbered from `start`. */
export function events(type, count, start = 0) {
  return Array.from({ length: count }, (_, i) =>
    jsonEvent({ type, data: { n: start + i } }),
  );
}

/** Every event of an async iterable (a read). */
export async function collect(iterable) {
  const all = [];
  for await (const resolved of iterable) {
    all.push(resolved);
  }
  return all;
}

/** The event ids of resolved events, or of new events. */
export function ids(items) {
  return items.map((item) => (item.event ? item.event.id : item.id));
}

/** The revisions of resolved events. */
export function revisions(resolved) {
  return resolved.map((r) => r.event.revision);
}

/** Runs `action`, which must fail with an error of class `ErrorClass`; returns the error. */
export async function expectError(ErrorClass, action, what) {
  let result;
  try {
    result = await action();
  } catch (error) {
    if (error instanceof ErrorClass) {
      console.log(`    raised ${error.constructor.name} as expected: ${error.message}`);
      return error;
    }
    throw new Error(
      `${what}: expected ${ErrorClass.name}, got ${error?.constructor?.name}: ${error?.message}`,
      { cause: error },
    );
  }
  throw new Error(`${what}: expected ${ErrorClass.name}, got success: ${String(result)}`);
}

/** Reads subscription events one at a time, failing after WAIT_MS without one. */
export class Taker {
  constructor(subscription) {
    this.subscription = subscription;
    this.iterator = subscription[Symbol.asyncIterator]();
  }

  async take(count) {
    const got = [];
    while (got.length < count) {
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no subscription event within ${WAIT_MS} ms (got ${got.length} of ${count})`)),
          WAIT_MS,
        );
      });
      try {
        const next = await Promise.race([this.iterator.next(), timeout]);
        if (next.done) {
          throw new Error(`the subscription ended after ${got.length} of ${count} events`);
        }
        got.push(next.value);
      } finally {
        clearTimeout(timer);
      }
    }
    return got;
  }

  async stop() {
    await this.subscription.unsubscribe();
  }
}

/** Waits for a subscription's confirmation, so that events appended afterwards are live. */
export function confirmed(subscription) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no subscription confirmation within ${WAIT_MS} ms`)),
      WAIT_MS,
    );
    subscription.once("confirmation", () => {
      clearTimeout(timer);
      resolve();
    });
    subscription.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Runs a scenario: prints the outcome, disposes of the client, exits 0 only on success. */
export async function run(name, client, scenario) {
  let code = 0;
  try {
    await scenario();
    console.log(`${name}: all checks passed`);
  } catch (error) {
    console.error(`${name}: FAILED`);
    console.error(error);
    code = 1;
  }
  try {
    await client.dispose();
  } catch (error) {
    console.error(`dispose failed: ${error}`);
  }
  process.exit(code);
}
