// Deletes and stream metadata through the Node client: deleteStream (soft: the stream reads
// as not found, appends bring it back with revisions continuing), tombstoneStream (every later
// read and append fails with StreamDeletedError), and setStreamMetadata / getStreamMetadata
// with maxCount and truncateBefore honoured by reads.
//
// Usage: node deletes_metadata.mjs kurrentdb://HOST:PORT?tls=false

import assert from "node:assert/strict";

import {
  ANY,
  BACKWARDS,
  END,
  NO_STREAM,
  StreamDeletedError,
  StreamNotFoundError,
  WrongExpectedVersionError,
} from "@kurrent/kurrentdb-client";

import { collect, connect, events, expectError, ids, revisions, run, step, unique } from "./support.mjs";

const client = connect();

/** Per-call credentials make the client use Streams.Append; insecure mode never sends them. */
const VIA_APPEND = { credentials: { username: "unused", password: "unused" } };

async function softDelete() {
  const stream = unique("soft");
  await client.appendToStream(stream, events("E", 3), { streamState: NO_STREAM });

  step("deleteStream with a wrong expected revision -> WrongExpectedVersionError");
  const error = await expectError(
    WrongExpectedVersionError,
    () => client.deleteStream(stream, { expectedRevision: 0n }),
    "deleteStream at revision 0",
  );
  assert.equal(error.actualState, 2n);
  assert.equal(error.expectedState, 0n);

  step("deleteStream with the last revision returns a position");
  const result = await client.deleteStream(stream, { expectedRevision: 2n });
  assert.ok(result.position === undefined || result.position.commit > 0n, `${result.position}`);

  step("readStream of the deleted stream -> StreamNotFoundError");
  await expectError(StreamNotFoundError, () => collect(client.readStream(stream)), "read after delete");

  step("deleteStream again with ANY succeeds");
  await client.deleteStream(stream, { expectedRevision: ANY });

  step("appending with NO_STREAM brings the stream back, revisions continuing at 3");
  const again = events("Again", 2);
  const appended = await client.appendToStream(stream, again, { streamState: NO_STREAM });
  assert.equal(appended.nextExpectedRevision, 4n);
  const got = await collect(client.readStream(stream));
  assert.deepEqual(ids(got), ids(again));
  assert.deepEqual(revisions(got), [3n, 4n]);

  step("deleteStream of a stream never written -> an error, nothing created");
  const missing = unique("soft-missing");
  await assert.rejects(client.deleteStream(missing, { expectedRevision: ANY }));
  await expectError(StreamNotFoundError, () => collect(client.readStream(missing)), "read missing");
}

async function tombstone() {
  const stream = unique("tomb");
  await client.appendToStream(stream, events("E", 2), { streamState: NO_STREAM });

  step("tombstoneStream with a wrong expected revision -> WrongExpectedVersionError");
  const error = await expectError(
    WrongExpectedVersionError,
    () => client.tombstoneStream(stream, { expectedRevision: 7n }),
    "tombstoneStream at revision 7",
  );
  assert.equal(error.actualState, 1n);

  step("tombstoneStream with the last revision");
  await client.tombstoneStream(stream, { expectedRevision: 1n });

  step("readStream of a tombstoned stream -> StreamDeletedError");
  await expectError(StreamDeletedError, () => collect(client.readStream(stream)), "read");
  await expectError(
    StreamDeletedError,
    () => collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END, maxCount: 1 })),
    "read backwards",
  );

  step("appendToStream to a tombstoned stream -> StreamDeletedError (BatchAppend and Append)");
  await expectError(
    StreamDeletedError,
    () => client.appendToStream(stream, events("Late", 1), { streamState: ANY }),
    "BatchAppend",
  );
  await expectError(
    StreamDeletedError,
    () => client.appendToStream(stream, events("Late", 1), { streamState: ANY, ...VIA_APPEND }),
    "Append",
  );

  step("deleteStream and tombstoneStream of a tombstoned stream -> StreamDeletedError");
  await expectError(StreamDeletedError, () => client.deleteStream(stream), "delete");
  await expectError(StreamDeletedError, () => client.tombstoneStream(stream), "tombstone");

  step("tombstoning a stream never written succeeds and blocks appends");
  const missing = unique("tomb-missing");
  await client.tombstoneStream(missing);
  await expectError(
    StreamDeletedError,
    () => client.appendToStream(missing, events("Late", 1), { streamState: NO_STREAM }),
    "append after tombstoning a missing stream",
  );
}

async function metadata() {
  const stream = unique("meta");

  step("getStreamMetadata of a stream without metadata: no metadata");
  let got = await client.getStreamMetadata(stream);
  assert.equal(got.streamName, stream);
  assert.equal(got.metadata, undefined);

  step("setStreamMetadata, then getStreamMetadata returns it");
  await client.setStreamMetadata(stream, { maxCount: 3, owner: "factum-tests" });
  got = await client.getStreamMetadata(stream);
  assert.equal(got.metadata.maxCount, 3);
  assert.equal(got.metadata.owner, "factum-tests");

  const written = events("Tick", 10);
  await client.appendToStream(stream, written, { streamState: NO_STREAM });

  step("maxCount 3: reads show the newest 3 events, forwards and backwards");
  assert.deepEqual(revisions(await collect(client.readStream(stream))), [7n, 8n, 9n]);
  assert.deepEqual(
    revisions(await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END }))),
    [9n, 8n, 7n],
  );

  // setStreamMetadata hands its options to appendToStream, which reads `streamState` (the
  // documented `expectedRevision` option is ignored by client 1.3.1).
  step("setStreamMetadata with a wrong expected revision -> WrongExpectedVersionError");
  await expectError(
    WrongExpectedVersionError,
    () => client.setStreamMetadata(stream, { maxCount: 1 }, { streamState: 5n }),
    "setStreamMetadata at revision 5",
  );

  step("setStreamMetadata at the right revision: truncateBefore 6 replaces maxCount");
  await client.setStreamMetadata(stream, { truncateBefore: 6 }, { streamState: 0n });
  got = await client.getStreamMetadata(stream);
  assert.equal(got.metadata.truncateBefore, 6);
  assert.equal(got.metadata.maxCount, undefined);
  assert.deepEqual(revisions(await collect(client.readStream(stream))), [6n, 7n, 8n, 9n]);
  assert.deepEqual(ids(await collect(client.readStream(stream))), ids(written.slice(6)));
}

await run("deletes_metadata", client, async () => {
  await softDelete();
  await tombstone();
  await metadata();
});
