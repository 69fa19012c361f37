// The SockJS floor of the live-data benchmarks (bench/sockjs.py): what the reference
// SockJS server, npm `sockjs` 0.3.24 (the version Meteor's server runs), costs to push
// committed rows to SockJS clients. One pg connection LISTENs to the channel that a
// trigger NOTIFYs with each row as JSON; each payload is written, as it is, to every
// open SockJS session (`conn.write`: sockjs frames it as `a["<payload>"]`), over
// whichever transport the session uses: websocket or xhr-polling (or any other).
// No DDP, no subscriptions, no per-client state.
//
// A session that sends anything is closed at once: the benchmark's way to end an
// xhr-polling session before sockjs's disconnect_delay runs out (SockJS has no
// message for it), so that it is not written to in the next rounds.
//
// usage: node sockjs_floor.js CHANNEL [HEARTBEAT_DELAY_MS]
//   PostgreSQL from the libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD,
//   PGDATABASE; serves SockJS under /sockjs on 127.0.0.1, a free port; prints
//   "listening on PORT" when ready. HEARTBEAT_DELAY_MS is sockjs's heartbeat_delay
//   (default 25000, sockjs's own; Meteor uses 45000): on websockets it is a ping the
//   client must answer within 10 s, which the latency clients do not do once live.
"use strict";

const http = require("http");
const { Client } = require("pg");
const sockjs = require("sockjs");

async function main() {
  const channel = process.argv[2];
  if (!/^[a-z_][a-z0-9_]*$/.test(channel || "")) {
    throw new Error(`expected a lower-case channel name, got ${channel}`);
  }
  const heartbeatDelay = Number(process.argv[3] || 25000);
  if (!(heartbeatDelay > 0 && heartbeatDelay <= 2147483647)) {
    throw new Error(`expected a heartbeat delay in ms up to 2^31 - 1, got ${process.argv[3]}`);
  }
  const db = new Client();
  await db.connect();
  db.on("error", (err) => {
    console.error(`lost the LISTEN connection: ${err.message}`);
    process.exit(1);
  });

  const sessions = new Set();
  const service = sockjs.createServer({
    prefix: "/sockjs",
    heartbeat_delay: heartbeatDelay,
    disconnect_delay: 5000, // sockjs's default
    log: (severity, line) => {
      if (severity === "error") console.error(line);
    },
  });
  service.on("connection", (conn) => {
    if (!conn) return;
    sessions.add(conn);
    conn.on("data", () => {
      sessions.delete(conn);
      conn.close();
    });
    conn.on("close", () => sessions.delete(conn));
  });
  db.on("notification", (notification) => {
    for (const conn of sessions) conn.write(notification.payload);
  });

  const server = http.createServer();
  // Keep-alive connections (an xhr-polling client's sending one) stay open as long
  // as the client keeps them, as gevent's server (dddp's) does; Node closes idle
  // ones after 5 s by default.
  server.keepAliveTimeout = 0;
  service.installHandlers(server);
  await db.query(`LISTEN ${channel}`);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  console.log(`listening on ${server.address().port}`);

  const stop = () => {
    for (const conn of sessions) conn.close();
    server.close();
    server.closeAllConnections();
    db.end().finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
