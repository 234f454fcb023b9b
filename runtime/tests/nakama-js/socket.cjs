// Drives the real nakama-js socket (npm @heroiclabs/nakama-js, over Node's
// WebSocket: run with --experimental-websocket) against the server: two
// players connect, follow each other's status, meet in a room, exchange,
// edit and page through messages, play a relayed match, call an RPC the
// server doesn't have, play a match an Element runs, and get notifications (stored for an offline
// player, pushed to an online one; sent by the operator's admin route).
// Prints one JSON object with what each step got; the Rust test
// (realtime_nakama_js.rs) asserts on it.
const { Client } = require(process.env.NAKAMA_JS);

function events(socket) {
  const ev = { presence: [], messages: [], status: [], notifications: [], matchdata: [], matchpresence: [] };
  socket.onchannelpresence = (e) => ev.presence.push(e);
  socket.onchannelmessage = (m) => ev.messages.push(m);
  socket.onstatuspresence = (e) => ev.status.push(e);
  socket.onnotification = (n) => ev.notifications.push(n);
  socket.onmatchdata = (d) => ev.matchdata.push(d);
  socket.onmatchpresence = (e) => ev.matchpresence.push(e);
  return ev;
}

async function waitFor(what, check) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const found = check();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function notify(userIds, subject, content) {
  const response = await fetch(`http://${process.env.ADMIN_ADDR}/api/rest/realtime/notification`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${process.env.ROOT_SECRET}` },
    body: JSON.stringify({ user_ids: userIds, subject, content, code: 1, persistent: true }),
  });
  if (response.status !== 200) throw new Error(`notify: ${response.status} ${await response.text()}`);
}

(async () => {
  const [host, port] = process.argv[2].split(":");
  const client = new Client("defaultkey", host, port, false, 10000, false);
  const out = {};
  const alice = await client.authenticateDevice("njs-rt-device-0001", true, "rt_alice");
  const bob = await client.authenticateDevice("njs-rt-device-0002", true, "rt_bob");
  const carol = await client.authenticateDevice("njs-rt-device-0003", true, "rt_carol");

  const a = client.createSocket(false, false);
  const b = client.createSocket(false, false);
  const evA = events(a);
  const evB = events(b);
  await a.connect(alice, true);
  await b.connect(bob, true);

  // Status: alice follows bob (online), then sees his status change.
  const status = await a.followUsers([bob.user_id]);
  out.follow_presences = status.presences.map((p) => p.username);
  await b.updateStatus("playing");
  const change = await waitFor("bob's status", () =>
    evA.status.find((e) => e.joins.some((j) => j.status === "playing")));
  out.status_join = change.joins.map((p) => [p.username, p.status]);

  // A room: both join, presence events, messages both ways.
  const chA = await a.joinChat("lobby", 1, true, false);
  const chB = await b.joinChat("lobby", 1, true, false);
  out.channel_id = chA.id;
  out.same_channel = chA.id === chB.id;
  out.bob_sees_in_room = chB.presences.map((p) => p.username);
  const joined = await waitFor("bob's join", () =>
    evA.presence.find((e) => e.joins.some((p) => p.username === "rt_bob")));
  out.alice_sees_join = joined.joins.map((p) => p.username);
  const ack = await a.writeChatMessage(chA.id, { text: "hello" });
  out.ack_username = ack.username;
  const got = await waitFor("alice's message at bob", () => evB.messages.find((m) => m.content.text === "hello"));
  out.bob_got = [got.username, got.sender_id === alice.user_id, got.content.text];
  await b.writeChatMessage(chB.id, { text: "hi alice" });
  const reply = await waitFor("bob's message at alice", () => evA.messages.find((m) => m.content.text === "hi alice"));
  out.alice_got = reply.username;
  await a.updateChatMessage(chA.id, ack.message_id, { text: "hello!" });
  const edited = await waitFor("the edit at bob", () => evB.messages.find((m) => m.code === 1));
  out.edit_seen = [edited.message_id === ack.message_id, edited.content.text];
  // Editing someone else's message is refused.
  out.edit_others = await b.updateChatMessage(chB.id, ack.message_id, { text: "mine now" }).then(
    () => "accepted",
    (e) => e.code,
  );

  // History: oldest first, paged.
  const page1 = await client.listChannelMessages(alice, chA.id, 1, true);
  const page2 = await client.listChannelMessages(alice, chA.id, 10, true, page1.next_cursor);
  out.history = page1.messages.concat(page2.messages).map((m) => [m.username, m.content.text]);

  await b.leaveChat(chB.id);
  const left = await waitFor("bob's leave", () =>
    evA.presence.find((e) => e.leaves.some((p) => p.username === "rt_bob")));
  out.alice_sees_leave = left.leaves.map((p) => p.username);

  // A relayed match.
  const match = await a.createMatch();
  out.match_id_form = /^[0-9a-f-]{36}\.[^.]+$/.test(match.match_id);
  out.match_created = [match.authoritative, match.size, match.self.username];
  const matchB = await b.joinMatch(match.match_id);
  out.bob_match = [matchB.size, matchB.presences.map((p) => p.username)];
  const mjoin = await waitFor("bob in the match", () =>
    evA.matchpresence.find((e) => e.joins.some((p) => p.username === "rt_bob")));
  out.match_join_event = mjoin.match_id === match.match_id;
  await a.sendMatchState(match.match_id, 7, "move e2e4");
  const dataB = await waitFor("alice's data at bob", () => evB.matchdata.find((d) => d.op_code === 7));
  out.bob_match_data = [new TextDecoder().decode(dataB.data), dataB.presence.username];
  await b.sendMatchState(match.match_id, 8, new Uint8Array([1, 2, 3]));
  const dataA = await waitFor("bob's data at alice", () => evA.matchdata.find((d) => d.op_code === 8));
  out.alice_match_data = Array.from(dataA.data);
  // Sent to bob only: alice doesn't get her own.
  await b.sendMatchState(match.match_id, 9, "to alice", [match.self]);
  await waitFor("the addressed data", () => evA.matchdata.find((d) => d.op_code === 9));
  out.bob_got_own = evB.matchdata.some((d) => d.op_code === 8 || d.op_code === 9);
  await b.leaveMatch(match.match_id);
  const mleave = await waitFor("bob leaving the match", () =>
    evA.matchpresence.find((e) => e.leaves.some((p) => p.username === "rt_bob")));
  out.match_leave_event = mleave.leaves.map((p) => p.username);
  out.join_unknown_match = await b.joinMatch("00000000-0000-0000-0000-000000000000.none").then(
    () => "accepted",
    (e) => e.code,
  );

  // Socket RPC: an id no Element serves.
  out.rpc = await a.rpc("echo", "{}").then(
    () => "accepted",
    (e) => [e.code, e.message],
  );

  // A match the turn-relay Element runs: created by its RPC over the
  // socket; alice's move reaches bob from the Element, which also notifies
  // him that it is his turn; his move out of turn is refused (op 3).
  const created = await a.rpc("turn_relay_create", "");
  const relayId = JSON.parse(created.payload).match_id;
  out.relay_match = (await a.joinMatch(relayId)).authoritative;
  await b.joinMatch(relayId);
  await b.sendMatchState(relayId, 2, "too early");
  const early = await waitFor("bob refused", () => evB.matchdata.find((d) => d.match_id === relayId && d.op_code === 3));
  out.relay_refused = early.presence === undefined || early.presence === null;
  await a.sendMatchState(relayId, 2, "e2e4");
  const relayed = await waitFor("alice's move at bob", () =>
    evB.matchdata.find((d) => d.match_id === relayId && d.op_code === 2));
  out.relay_move = new TextDecoder().decode(relayed.data);
  const turn = await waitFor("bob's turn notification", () => evB.notifications.find((n) => n.subject === "Your turn"));
  out.relay_notification = [turn.subject, turn.content.match_id === relayId, turn.persistent];
  out.alice_got_own_move = evA.matchdata.some((d) => d.match_id === relayId);

  // Notifications: carol is offline: stored, listed, deleted.
  await notify([carol.user_id], "while you were away", { n: 1 });
  const stored = await client.listNotifications(carol, 10);
  out.offline_listed = stored.notifications.map((n) => [n.subject, n.content.n, n.persistent]);
  await client.deleteNotifications(carol, [stored.notifications[0].id]);
  out.after_delete = (await client.listNotifications(carol, 10)).notifications.length;
  // Bob is online: pushed to his socket.
  await notify([bob.user_id], "live", { n: 2 });
  const pushed = await waitFor("bob's notification", () => evB.notifications.find((n) => n.subject === "live"));
  out.pushed = [pushed.subject, pushed.content.n];

  // Bob goes: alice, his follower, sees him leave.
  b.disconnect(false);
  const gone = await waitFor("bob offline", () =>
    evA.status.find((e) => e.leaves.some((p) => p.username === "rt_bob")));
  out.status_leave = gone.leaves.map((p) => p.username);
  a.disconnect(false);
  console.log(JSON.stringify(out));
  process.exit(0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
