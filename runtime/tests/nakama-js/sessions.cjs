// Drives the real nakama-js client (npm @heroiclabs/nakama-js) against the
// server: login, refresh, a replayed refresh token, logout. Prints one JSON
// object with what each step got (an HTTP status for refusals); the Rust
// test (identity_nakama_js.rs) asserts on it.
const { Client, Session } = require(process.env.NAKAMA_JS);

const status = (e) => (e && typeof e.status === "number" ? e.status : String(e));

async function refused(step) {
  try {
    await step();
    return "accepted";
  } catch (e) {
    return status(e);
  }
}

(async () => {
  const [host, port] = process.argv[2].split(":");
  // No automatic refreshes: each one here is on purpose.
  const client = new Client("defaultkey", host, port, false, 10000, false);
  const out = {};

  const session = await client.authenticateDevice("nakama-js-device-0001", true, "njs_player");
  out.username = (await client.getAccount(session)).user.username;

  const first = { token: session.token, refresh: session.refresh_token };
  await client.sessionRefresh(session);
  out.rotated = session.token !== first.token && session.refresh_token !== first.refresh;
  out.username_after_refresh = (await client.getAccount(session)).user.username;

  // A stolen copy of the first refresh token, used after the owner refreshed.
  const stolen = Session.restore(first.token, first.refresh);
  out.replay = await refused(() => client.sessionRefresh(stolen));
  // The replay revoked the family: the owner's current pair is dead too.
  out.current_after_replay = await refused(() => client.getAccount(session));
  out.refresh_after_replay = await refused(() => client.sessionRefresh(session));

  // A new login, logged out as nakama-js does it (both tokens).
  const again = await client.authenticateDevice("nakama-js-device-0001", false);
  out.account_before_logout = (await client.getAccount(again)).user.username;
  out.logout = await client.sessionLogout(again, again.token, again.refresh_token);
  out.account_after_logout = await refused(() => client.getAccount(again));
  out.refresh_after_logout = await refused(() => client.sessionRefresh(again));

  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error("nakama-js run failed:", e);
  process.exit(1);
});
