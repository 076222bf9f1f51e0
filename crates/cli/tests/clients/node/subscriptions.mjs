// Catch-up subscriptions through the Node client: subscribeToStream and subscribeToAll get the
// history, then live events appended after the confirmation, with no gap and no duplicate,
// also while appends keep coming across the switch from catch-up to live.
//
// Usage: node subscriptions.mjs kurrentdb://HOST:PORT?tls=false

import assert from "node:assert/strict";

import { ANY, END, NO_STREAM, START, eventTypeFilter, streamNameFilter } from "@kurrent/kurrentdb-client";

import { Taker, confirmed, connect, events, ids, revisions, run, step, unique } from "./support.mjs";

const client = connect();

async function streamSubscriptions() {
  const stream = unique("sub-stream");
  const historical = events("Before", 3);
  await client.appendToStream(stream, historical, { streamState: NO_STREAM });

  step("subscribeToStream from START: the 3 historical events first");
  const subscription = client.subscribeToStream(stream, { fromRevision: START });
  const ready = confirmed(subscription);
  const taker = new Taker(subscription);
  let got = await taker.take(3);
  await ready;
  assert.deepEqual(ids(got), ids(historical));
  assert.deepEqual(revisions(got), [0n, 1n, 2n]);

  step("then 5 events appended one at a time arrive live, in order");
  const live = events("Live", 5);
  const waiting = taker.take(5);
  for (const [i, event] of live.entries()) {
    await client.appendToStream(stream, event, { streamState: BigInt(2 + i) });
  }
  got = await waiting;
  assert.deepEqual(ids(got), ids(live));
  assert.deepEqual(revisions(got), [3n, 4n, 5n, 6n, 7n]);
  await taker.stop();

  step("subscribeToStream from revision 5 is exclusive: 6, 7, then a new 8");
  const from5 = new Taker(client.subscribeToStream(stream, { fromRevision: 5n }));
  got = await from5.take(2);
  assert.deepEqual(revisions(got), [6n, 7n]);
  await client.appendToStream(stream, events("After", 1), { streamState: 7n });
  got = await from5.take(1);
  assert.deepEqual(revisions(got), [8n]);
  await from5.stop();

  step("subscribeToStream from END: only events appended after the confirmation");
  const fromEnd = client.subscribeToStream(stream, { fromRevision: END });
  const endReady = confirmed(fromEnd);
  const endTaker = new Taker(fromEnd);
  await endReady;
  const later = events("Later", 2);
  await client.appendToStream(stream, later, { streamState: 8n });
  got = await endTaker.take(2);
  assert.deepEqual(ids(got), ids(later));
  assert.deepEqual(revisions(got), [9n, 10n]);
  await endTaker.stop();

  step("a subscription to a stream not written yet waits for its first events");
  const fresh = unique("sub-fresh");
  const freshSubscription = client.subscribeToStream(fresh);
  const freshReady = confirmed(freshSubscription);
  const freshTaker = new Taker(freshSubscription);
  await freshReady;
  const first = events("First", 2);
  await client.appendToStream(fresh, first, { streamState: NO_STREAM });
  got = await freshTaker.take(2);
  assert.deepEqual(ids(got), ids(first));
  await freshTaker.stop();
}

async function streamSwitchUnderLoad() {
  step("subscribeToStream while 300 events are being appended: every revision once");
  const stream = unique("sub-load");
  const total = 300;
  const written = [];
  let halfway;
  const reachedHalfway = new Promise((resolve) => (halfway = resolve));
  const writer = (async () => {
    let revision = -1n;
    while (written.length < total) {
      const batch = events("Load", Math.min(1 + (written.length % 4), total - written.length), written.length);
      await client.appendToStream(stream, batch, { streamState: revision < 0n ? NO_STREAM : revision });
      written.push(...batch);
      revision += BigInt(batch.length);
      if (written.length >= 50) halfway();
    }
  })();
  await reachedHalfway;
  const taker = new Taker(client.subscribeToStream(stream));
  const got = await taker.take(total);
  await writer;
  assert.deepEqual(revisions(got), Array.from({ length: total }, (_, i) => BigInt(i)));
  assert.deepEqual(ids(got), ids(written));
  await taker.stop();
}

async function allSubscriptions() {
  const tag = unique("s").replaceAll("-", "");
  const streams = [`suball${tag}-a`, `suball${tag}-b`];
  const onlyMine = streamNameFilter({ prefixes: [`suball${tag}-`] });

  const historical = [];
  for (let i = 0; i < 4; i++) {
    const [event] = events(`Happened${tag}`, 1, i);
    await client.appendToStream(streams[i % 2], event, { streamState: ANY });
    historical.push(event);
  }

  step("subscribeToAll (streamNameFilter on this run's streams): the history first");
  const subscription = client.subscribeToAll({ fromPosition: START, filter: onlyMine });
  const taker = new Taker(subscription);
  let got = await taker.take(4);
  assert.deepEqual(ids(got), ids(historical));

  step("then events appended to two streams arrive live, in log order");
  const live = events(`Happened${tag}`, 6, 10);
  const waiting = taker.take(6);
  for (const [i, event] of live.entries()) {
    await client.appendToStream(streams[i % 2], event, { streamState: ANY });
  }
  const gotLive = await waiting;
  assert.deepEqual(ids(gotLive), ids(live));
  const positions = [...got, ...gotLive].map((r) => r.event.position.commit);
  for (let i = 1; i < positions.length; i++) assert.ok(positions[i - 1] < positions[i], `${positions}`);
  await taker.stop();

  step("subscribeToAll from a position is exclusive");
  const after = got[1].event.position;
  const fromPosition = new Taker(client.subscribeToAll({ fromPosition: after, filter: onlyMine }));
  got = await fromPosition.take(2);
  assert.deepEqual(ids(got), ids(historical.slice(2)));
  await fromPosition.stop();

  step("subscribeToAll from END: only events appended after the confirmation");
  const fromEnd = client.subscribeToAll({ fromPosition: END, filter: onlyMine });
  const ready = confirmed(fromEnd);
  const endTaker = new Taker(fromEnd);
  await ready;
  const [later] = events(`Later${tag}`, 1);
  await client.appendToStream(streams[0], later, { streamState: ANY });
  got = await endTaker.take(1);
  assert.deepEqual(ids(got), [later.id]);
  await endTaker.stop();

  step("subscribeToAll with an eventTypeFilter: only that type");
  const byType = new Taker(client.subscribeToAll({ filter: eventTypeFilter({ regex: `^Later${tag}$` }) }));
  got = await byType.take(1);
  assert.deepEqual(ids(got), [later.id]);
  await byType.stop();

  step("subscribeToAll while 300 events are appended to 3 streams: each event once, in order");
  const loadStreams = [0, 1, 2].map((i) => `allload${tag}-${i}`);
  const written = [];
  let halfway;
  const reachedHalfway = new Promise((resolve) => (halfway = resolve));
  const writer = (async () => {
    for (let i = 0; written.length < 300; i++) {
      const batch = events("Load", Math.min(1 + (i % 3), 300 - written.length), written.length);
      await client.appendToStream(loadStreams[i % 3], batch, { streamState: ANY });
      written.push(...batch);
      if (written.length >= 50) halfway();
    }
  })();
  await reachedHalfway;
  const load = new Taker(client.subscribeToAll({ filter: streamNameFilter({ prefixes: [`allload${tag}-`] }) }));
  got = await load.take(300);
  await writer;
  assert.deepEqual(ids(got), ids(written));
  await load.stop();
}

await run("subscriptions", client, async () => {
  await streamSubscriptions();
  await streamSwitchUnderLoad();
  await allSubscriptions();
});
