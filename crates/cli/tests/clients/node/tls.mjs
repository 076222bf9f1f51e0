// TLS: the Node client over `tls=true`, trusting only the development CA that `factum dev-cert`
// wrote (`tlsCAFile`), logged in as the first admin the test harness gave the server.
//
// Usage: node tls.mjs 'kurrentdb://USER:PASSWORD@localhost:PORT?tls=true&tlsCAFile=ca.pem'

import assert from "node:assert/strict";

import { NO_STREAM } from "@kurrent/kurrentdb-client";

import { Taker, collect, connect, events, ids, run, step, unique } from "./support.mjs";

const uri = process.argv[2] ?? "";
const client = connect();

await run("tls", client, async () => {
  step("the URI asks for TLS with the development CA");
  assert.ok(/tls=true/i.test(uri) && /tlsCAFile=/i.test(uri), uri);
  const stream = unique("tls");

  step("append over TLS");
  const written = events("Opened", 3);
  const result = await client.appendToStream(stream, written, { streamState: NO_STREAM });
  assert.equal(result.success, true);

  step("read the stream back over TLS");
  assert.deepEqual(ids(await collect(client.readStream(stream))), ids(written));

  step("a catch-up subscription over TLS delivers them");
  const taker = new Taker(client.subscribeToStream(stream));
  assert.deepEqual(ids(await taker.take(3)), ids(written));
  await taker.stop();
});
