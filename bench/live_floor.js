// The floor of the live-data benchmark (bench/live.py): the least a server can do to
// push committed rows to WebSocket clients. One pg connection LISTENs to the channel
// that a trigger NOTIFYs with each row as JSON; each payload is written, as it is, to
// every open socket. No protocol, no subscriptions, no per-client state.
//
// usage: node live_floor.js CHANNEL   (PostgreSQL from the libpq variables PGHOST,
// PGPORT, PGUSER, PGPASSWORD, PGDATABASE); prints "listening on PORT" when ready.
"use strict";

const { Client } = require("pg");
const { WebSocketServer, WebSocket } = require("ws");

async function main() {
  const channel = process.argv[2];
  if (!/^[a-z_][a-z0-9_]*$/.test(channel || "")) {
    throw new Error(`expected a lower-case channel name, got ${channel}`);
  }
  const db = new Client();
  await db.connect();
  db.on("error", (err) => {
    console.error(`lost the LISTEN connection: ${err.message}`);
    process.exit(1);
  });

  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  const listening = new Promise((resolve) => wss.on("listening", resolve));
  db.on("notification", (notification) => {
    for (const socket of wss.clients) {
      if (socket.readyState === WebSocket.OPEN) socket.send(notification.payload);
    }
  });
  await db.query(`LISTEN ${channel}`);
  await listening;
  console.log(`listening on ${wss.address().port}`);

  const stop = () => {
    for (const socket of wss.clients) socket.terminate();
    wss.close();
    db.end().finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
