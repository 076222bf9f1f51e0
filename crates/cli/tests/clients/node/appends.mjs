// Appends through the Node client: every expected-revision form, on both append RPCs,
// WrongExpectedVersionError, idempotent retries, and the events read back field by field.
//
// The client appends through Streams.BatchAppend when the server advertises it
// (ServerFeatures); a call given per-call credentials goes through Streams.Append instead (the
// credentials themselves are never sent on an insecure connection), which is how this
// scenario covers both RPCs.
//
// Usage: node appends.mjs kurrentdb://HOST:PORT?tls=false

import assert from "node:assert/strict";

import {
  ANY,
  NO_STREAM,
  STREAM_EXISTS,
  WrongExpectedVersionError,
  binaryEvent,
  jsonEvent,
} from "@kurrent/kurrentdb-client";

import { collect, connect, events, expectError, ids, revisions, run, step, unique } from "./support.mjs";

const client = connect();

/** Per-call credentials make the client use Streams.Append; insecure mode never sends them. */
const VIA_APPEND = { credentials: { username: "unused", password: "unused" } };
const RPCS = [
  ["BatchAppend", {}],
  ["Append", VIA_APPEND],
];

async function expectedRevisionForms() {
  const stream = unique("appends");
  const written = [];
  let last;
  for (const [rpc, extra] of RPCS) {
    const tag = `${rpc} `;
    const creates = rpc === "BatchAppend";
    if (creates) {
      step(`${tag}with NO_STREAM creates the stream`);
      const batch = events("Opened", 2);
      last = await client.appendToStream(stream, batch, { streamState: NO_STREAM, ...extra });
      written.push(...batch);
      assert.equal(last.success, true);
      assert.equal(last.nextExpectedRevision, 1n);
      assert.ok(last.position.commit > 0n, `position ${last.position.commit}`);
    }

    step(`${tag}with the exact revision ${written.length - 1}`);
    let batch = events("Exact", 2, written.length);
    let result = await client.appendToStream(stream, batch, {
      streamState: BigInt(written.length - 1),
      ...extra,
    });
    written.push(...batch);
    assert.equal(result.nextExpectedRevision, BigInt(written.length - 1));
    assert.ok(result.position.commit > last.position.commit, "positions grow");
    last = result;

    step(`${tag}with ANY`);
    batch = events("Any", 1, written.length);
    result = await client.appendToStream(stream, batch, { streamState: ANY, ...extra });
    written.push(...batch);
    assert.equal(result.nextExpectedRevision, BigInt(written.length - 1));
    last = result;

    step(`${tag}with STREAM_EXISTS`);
    batch = events("Exists", 1, written.length);
    result = await client.appendToStream(stream, batch, { streamState: STREAM_EXISTS, ...extra });
    written.push(...batch);
    assert.equal(result.nextExpectedRevision, BigInt(written.length - 1));
    last = result;
  }

  step("the stream holds exactly the appended events, revisions 0..N");
  const recorded = await collect(client.readStream(stream));
  assert.deepEqual(ids(recorded), ids(written));
  assert.deepEqual(revisions(recorded), written.map((_, i) => BigInt(i)));
  assert.equal(recorded.at(-1).event.position.commit, last.position.commit);
  return { stream, written };
}

async function wrongExpectedVersions(stream, written) {
  const actual = BigInt(written.length - 1);
  const missing = unique("never-written");
  const cases = [
    ["NO_STREAM on an existing stream", stream, NO_STREAM, actual],
    ["a revision behind the stream", stream, 1n, actual],
    ["a revision ahead of the stream", stream, 100n, actual],
    ["STREAM_EXISTS on a missing stream", missing, STREAM_EXISTS, "no_stream"],
    ["revision 0 on a missing stream", missing, 0n, "no_stream"],
  ];
  for (const [rpc, extra] of RPCS) {
    for (const [label, target, streamState, expectedActual] of cases) {
      step(`${rpc} with ${label} -> WrongExpectedVersionError (actual ${expectedActual})`);
      const error = await expectError(
        WrongExpectedVersionError,
        () => client.appendToStream(target, events("Rejected", 1), { streamState, ...extra }),
        `${rpc}, ${label}`,
      );
      assert.equal(error.actualState, expectedActual);
      assert.equal(error.expectedState, streamState);
      assert.equal(error.streamName, target);
    }
  }
  step("failed appends wrote nothing");
  assert.deepEqual(ids(await collect(client.readStream(stream))), ids(written));
}

async function idempotentRetries() {
  const stream = unique("retries");
  const batch = events("Once", 3);
  step("an append retried with the same ids (NO_STREAM) returns the first result");
  const first = await client.appendToStream(stream, batch, { streamState: NO_STREAM });
  const again = await client.appendToStream(stream, batch, { streamState: NO_STREAM });
  assert.equal(again.nextExpectedRevision, first.nextExpectedRevision);
  assert.equal(again.position.commit, first.position.commit);

  step("an append retried with the same id (exact revision, Append RPC) returns the first result");
  const single = events("Single", 1);
  const one = await client.appendToStream(stream, single, { streamState: 2n, ...VIA_APPEND });
  const two = await client.appendToStream(stream, single, { streamState: 2n, ...VIA_APPEND });
  assert.equal(two.nextExpectedRevision, 3n);
  assert.equal(two.position.commit, one.position.commit);

  step("an append retried with ANY returns the first result");
  const anyBatch = events("Anyway", 2);
  const anyFirst = await client.appendToStream(stream, anyBatch, { streamState: ANY });
  const anyAgain = await client.appendToStream(stream, anyBatch, { streamState: ANY });
  assert.equal(anyAgain.position.commit, anyFirst.position.commit);
  assert.equal(anyAgain.nextExpectedRevision, 5n);

  step("nothing was duplicated");
  const recorded = await collect(client.readStream(stream));
  assert.deepEqual(ids(recorded), ids([...batch, ...single, ...anyBatch]));
}

async function fieldsRoundTrip() {
  const stream = unique("fields");
  step("Append with NO_STREAM creates a stream; JSON and binary events come back whole");
  const before = Date.now();
  const json = jsonEvent({
    type: "Described",
    data: { text: "caf\u00e9 \u2603", list: [1, 2, 3] },
    metadata: { correlation: "abc" },
  });
  const bytes = new Uint8Array(256).map((_, i) => i);
  const binary = binaryEvent({ type: "Blob", data: bytes, metadata: new Uint8Array([0, 1, 2]) });
  const result = await client.appendToStream(stream, [json, binary], {
    streamState: NO_STREAM,
    ...VIA_APPEND,
  });
  assert.equal(result.nextExpectedRevision, 1n);
  const [gotJson, gotBinary] = (await collect(client.readStream(stream))).map((r) => r.event);
  assert.equal(gotJson.id, json.id);
  assert.equal(gotJson.type, "Described");
  assert.equal(gotJson.isJson, true);
  assert.deepEqual(gotJson.data, json.data);
  assert.deepEqual(gotJson.metadata, { correlation: "abc" });
  assert.equal(gotJson.streamId, stream);
  assert.equal(gotBinary.id, binary.id);
  assert.equal(gotBinary.isJson, false);
  assert.deepEqual(new Uint8Array(gotBinary.data), bytes);
  const slackMs = 5 * 60 * 1000;
  for (const got of [gotJson, gotBinary]) {
    const created = got.created.getTime();
    assert.ok(Math.abs(created - before) < slackMs, `created ${got.created.toISOString()}`);
  }
}

await run("appends", client, async () => {
  const { stream, written } = await expectedRevisionForms();
  await wrongExpectedVersions(stream, written);
  await idempotentRetries();
  await fieldsRoundTrip();
});
