// Reads through the Node client (its native Rust bridge): readStream forwards and backwards
// with limits and start revisions, a missing stream, and readAll with eventTypeFilter and
// streamNameFilter (regex and prefixes), directions, positions and limits.
//
// Usage: node reads.mjs kurrentdb://HOST:PORT?tls=false

import assert from "node:assert/strict";

import {
  ANY,
  BACKWARDS,
  END,
  FORWARDS,
  NO_STREAM,
  START,
  StreamNotFoundError,
  eventTypeFilter,
  excludeSystemEvents,
  jsonEvent,
  streamNameFilter,
} from "@kurrent/kurrentdb-client";

import { collect, connect, events, expectError, ids, revisions, run, step, unique } from "./support.mjs";

const client = connect();

const range = (from, to) => {
  const step = from <= to ? 1 : -1;
  const all = [];
  for (let i = from; step > 0 ? i <= to : i >= to; i += step) all.push(BigInt(i));
  return all;
};

async function streamReads() {
  const stream = unique("reads");
  const written = events("Counted", 10);
  await client.appendToStream(stream, written, { streamState: NO_STREAM });
  await client.appendToStream(unique("reads-other"), events("Other", 2), { streamState: NO_STREAM });

  step("readStream forwards from START: revisions 0..9, the appended ids");
  let got = await collect(client.readStream(stream));
  assert.deepEqual(revisions(got), range(0, 9));
  assert.deepEqual(ids(got), ids(written));
  assert.ok(got.every((r) => r.event.streamId === stream));

  step("forwards from revision 3, maxCount 4: revisions 3..6");
  got = await collect(client.readStream(stream, { fromRevision: 3n, maxCount: 4 }));
  assert.deepEqual(revisions(got), range(3, 6));

  step("forwards from past the end: nothing");
  got = await collect(client.readStream(stream, { fromRevision: 10n }));
  assert.deepEqual(got, []);

  step("backwards from END: revisions 9..0");
  got = await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END }));
  assert.deepEqual(revisions(got), range(9, 0));
  assert.deepEqual(ids(got), ids(written).reverse());

  step("backwards from END, maxCount 3: revisions 9, 8, 7");
  got = await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END, maxCount: 3 }));
  assert.deepEqual(revisions(got), range(9, 7));

  step("backwards from revision 5, maxCount 2: revisions 5, 4");
  got = await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: 5n, maxCount: 2 }));
  assert.deepEqual(revisions(got), range(5, 4));

  step("positions grow with revisions");
  got = await collect(client.readStream(stream));
  const positions = got.map((r) => r.event.position.commit);
  for (let i = 1; i < positions.length; i++) assert.ok(positions[i - 1] < positions[i], `${positions}`);

  step("readStream of a stream never written -> StreamNotFoundError");
  await expectError(
    StreamNotFoundError,
    () => collect(client.readStream(unique("missing"))),
    "readStream of a missing stream",
  );
  await expectError(
    StreamNotFoundError,
    () => collect(client.readStream(unique("missing"), { direction: BACKWARDS, fromRevision: END })),
    "backwards readStream of a missing stream",
  );
}

async function allReads() {
  const tag = unique("t").replaceAll("-", "");
  const orders = [`orders${tag}-0`, `orders${tag}-1`];
  const invoices = `invoices${tag}-0`;
  const system = `system${tag}`;
  const log = [
    [orders[0], `OrderPlaced${tag}`],
    [invoices, `InvoiceSent${tag}`],
    [orders[1], `OrderPlaced${tag}`],
    [orders[0], `OrderShipped${tag}`],
  ];
  const written = [];
  for (const [stream, type] of log) {
    const event = jsonEvent({ type, data: { stream } });
    await client.appendToStream(stream, event, { streamState: ANY });
    written.push(event);
  }
  // Last, a system event: the `$metadata` event setStreamMetadata appends to `$$system...`.
  await client.setStreamMetadata(system, { tag });
  const [metadataEvent] = await collect(client.readStream(`$$${system}`));
  assert.equal(metadataEvent.event.type, "$metadata");
  written.push(metadataEvent);
  const all = ids(written);
  const mine = (resolved) => resolved.filter((r) => r.event.streamId.includes(tag));

  step("readAll forwards from START: this run's events in order, positions growing");
  let got = mine(await collect(client.readAll({ fromPosition: START })));
  assert.deepEqual(ids(got), all);
  const positions = got.map((r) => r.event.position.commit);
  for (let i = 1; i < positions.length; i++) assert.ok(positions[i - 1] < positions[i], `${positions}`);

  step("readAll backwards from END: newest first; maxCount 1 is the system event");
  got = mine(await collect(client.readAll({ direction: BACKWARDS, fromPosition: END })));
  assert.deepEqual(ids(got), [...all].reverse());
  got = await collect(client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1 }));
  assert.deepEqual(ids(got), [all[4]]);

  step("readAll from a position: forwards inclusive, backwards exclusive");
  const second = { commit: positions[1], prepare: positions[1] };
  got = mine(await collect(client.readAll({ fromPosition: second, direction: FORWARDS })));
  assert.deepEqual(ids(got), all.slice(1));
  got = mine(await collect(client.readAll({ fromPosition: second, direction: BACKWARDS })));
  assert.deepEqual(ids(got), [all[0]]);

  step("eventTypeFilter with a regex: the orders placed");
  got = await collect(client.readAll({ filter: eventTypeFilter({ regex: `^OrderPlaced${tag}$` }) }));
  assert.deepEqual(ids(got), [all[0], all[2]]);

  step("eventTypeFilter with prefixes: placed and shipped orders");
  got = await collect(client.readAll({ filter: eventTypeFilter({ prefixes: [`OrderPlaced${tag}`, `OrderShipped${tag}`] }) }));
  assert.deepEqual(ids(got), [all[0], all[2], all[3]]);

  step("eventTypeFilter, maxCount 1: the limit counts matching events");
  got = await collect(client.readAll({ filter: eventTypeFilter({ regex: `^Order.*${tag}$` }), maxCount: 1 }));
  assert.deepEqual(ids(got), [all[0]]);

  step("eventTypeFilter backwards from END: the last matching event first");
  got = await collect(
    client.readAll({ filter: eventTypeFilter({ regex: `^Order.*${tag}$` }), direction: BACKWARDS, fromPosition: END }),
  );
  assert.deepEqual(ids(got), [all[3], all[2], all[0]]);

  step("streamNameFilter with a regex: the streams of order 0");
  got = await collect(client.readAll({ filter: streamNameFilter({ regex: `^${orders[0]}$` }) }));
  assert.deepEqual(ids(got), [all[0], all[3]]);

  step("streamNameFilter with prefixes: invoices and the system stream");
  got = await collect(client.readAll({ filter: streamNameFilter({ prefixes: [`invoices${tag}`, `$$${system}`] }) }));
  assert.deepEqual(ids(got), [all[1], all[4]]);

  step("excludeSystemEvents: no `$` event types");
  got = await collect(client.readAll({ filter: excludeSystemEvents() }));
  assert.ok(got.every((r) => !r.event.type.startsWith("$")), "a `$` event type got through");
  assert.deepEqual(ids(mine(got)), all.slice(0, 4));
}

await run("reads", client, async () => {
  await streamReads();
  await allReads();
});
