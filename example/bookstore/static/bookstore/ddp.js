// A small DDP client for the bookstore page: one WebSocket to dddp's /websocket,
// the subscribed documents kept per collection, and reconnection by itself.
//
//   const ddp = new DDPClient("ws://127.0.0.1:8000/websocket", {onstate, onchange});
//   ddp.subscribe("AllBooks");
//   ddp.collection("bookstore.book");  // a Map of id -> fields
//
// Field values are left as the server's EJSON ({"$date": ms} and so on): the
// bookstore has only strings.
"use strict";

class DDPClient {
  static RETRY_FIRST_MS = 500;
  static RETRY_MAX_MS = 5000;
  // dddp pings a silent client, but nothing tells a client that the server has
  // gone silent (a laptop asleep, a lost route): so ping it, and give up on it.
  static PING_AFTER_MS = 15000;
  static GIVE_UP_AFTER_MS = 30000;

  constructor(url, {onstate = () => {}, onchange = () => {}} = {}) {
    this.url = url;
    this.onstate = onstate;
    this.onchange = onchange;
    this.subscriptions = []; // [name, params], subscribed again on every connection
    this.shown = new Map(); // collection -> Map(id -> fields): what the page shows
    this.retryMs = DDPClient.RETRY_FIRST_MS;
    this.everConnected = false;
    this.lastHeard = 0;
    this.nextId = 1;
    this.setState("connecting");
    setInterval(() => this.checkSilence(), 1000);
    this.open();
  }

  subscribe(name, ...params) {
    this.subscriptions.push([name, params]);
    if (this.state === "connected") this.sendSub(name, params);
  }

  collection(name) {
    return this.shown.get(name) || new Map();
  }

  open() {
    // Each connection starts over: its documents are collected apart from the
    // shown ones, which give way only once all its subscriptions are ready, so
    // the page neither blanks out meanwhile nor keeps a document removed while
    // it was disconnected.
    this.received = new Map();
    this.unready = new Set();
    this.socket = new WebSocket(this.url);
    this.socket.onopen = () => this.send({msg: "connect", version: "1", support: ["1", "pre2", "pre1"]});
    this.socket.onmessage = (event) => this.handle(JSON.parse(event.data));
    this.socket.onclose = () => this.retry();
  }

  retry() {
    this.socket.onclose = this.socket.onmessage = null;
    this.setState(this.everConnected ? "reconnecting" : "connecting");
    setTimeout(() => this.open(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, DDPClient.RETRY_MAX_MS);
  }

  checkSilence() {
    if (this.state !== "connected") return;
    const silentMs = Date.now() - this.lastHeard;
    if (silentMs > DDPClient.GIVE_UP_AFTER_MS) {
      // close() would wait for a closing handshake that a dead peer never sends.
      this.socket.close();
      this.retry();
    } else if (silentMs > DDPClient.PING_AFTER_MS) {
      this.send({msg: "ping"});
    }
  }

  handle(message) {
    this.lastHeard = Date.now();
    switch (message.msg) {
      case "connected":
        this.everConnected = true;
        this.retryMs = DDPClient.RETRY_FIRST_MS;
        this.setState("connected");
        for (const [name, params] of this.subscriptions) this.sendSub(name, params);
        break;
      case "failed": // no common version: retrying would fail the same way
        console.error("DDP: the server speaks none of our versions; it offers", message.version);
        this.socket.onclose = null;
        this.socket.close();
        this.setState("failed");
        break;
      case "ping":
        this.send(message.id === undefined ? {msg: "pong"} : {msg: "pong", id: message.id});
        break;
      case "added":
        this.documents(message.collection).set(message.id, {...message.fields});
        this.documentsChanged();
        break;
      case "changed": {
        const fields = this.documents(message.collection).get(message.id);
        if (!fields) break;
        Object.assign(fields, message.fields);
        for (const name of message.cleared || []) delete fields[name];
        this.documentsChanged();
        break;
      }
      case "removed":
        this.documents(message.collection).delete(message.id);
        this.documentsChanged();
        break;
      case "nosub":
        console.error("DDP: subscription refused", message.error);
      // fall through: it will never be ready, and must not hold back the others
      case "ready":
        for (const id of message.subs || [message.id]) this.unready.delete(id);
        if (this.unready.size === 0 && this.shown !== this.received) {
          this.shown = this.received;
          this.onchange();
        }
        break;
      case "error":
        console.error("DDP: the server did not understand us:", message.reason, message.offendingMessage);
        break;
    }
  }

  documents(collection) {
    if (!this.received.has(collection)) this.received.set(collection, new Map());
    return this.received.get(collection);
  }

  documentsChanged() {
    if (this.shown === this.received) this.onchange();
  }

  sendSub(name, params) {
    const id = String(this.nextId++);
    this.unready.add(id);
    this.send({msg: "sub", id, name, params});
  }

  send(message) {
    this.socket.send(JSON.stringify(message));
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onstate(state);
  }
}
