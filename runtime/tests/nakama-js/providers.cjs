// Drives the real nakama-js client through every social and platform login
// (authenticate*, link*, unlink*) against the server and the provider stubs.
// The proofs come from the Rust test in PROOFS (one set per provider, each
// proof used once: Game Center refuses a replayed signature). Prints one
// JSON object; identity_nakama_js.rs asserts on it.
const { Client } = require(process.env.NAKAMA_JS);

const status = (e) => (e && typeof e.status === "number" ? e.status : String(e));
const attempt = async (f) => {
  try {
    return await f();
  } catch (e) {
    return status(e);
  }
};

(async () => {
  const [host, port] = process.argv[2].split(":");
  const client = new Client("defaultkey", host, port, false, 10000, false);
  const proofs = JSON.parse(process.env.PROOFS);
  const gc = (p) => [p.bundle_id, p.player_id, p.public_key_url, p.salt, p.signature, String(p.timestamp_seconds)];
  const calls = {
    apple: {
      auth: (p, create, username) => client.authenticateApple(p.token, create, username),
      link: (s, p) => client.linkApple(s, { token: p.token }),
      unlink: (s, p) => client.unlinkApple(s, { token: p.token }),
    },
    google: {
      auth: (p, create, username) => client.authenticateGoogle(p.token, create, username),
      link: (s, p) => client.linkGoogle(s, { token: p.token }),
      unlink: (s, p) => client.unlinkGoogle(s, { token: p.token }),
    },
    facebook: {
      auth: (p, create, username) => client.authenticateFacebook(p.token, create, username, true),
      link: (s, p) => client.linkFacebook(s, { token: p.token }),
      unlink: (s, p) => client.unlinkFacebook(s, { token: p.token }),
    },
    facebookinstantgame: {
      auth: (p, create, username) => client.authenticateFacebookInstantGame(p.signed_player_info, create, username),
      link: (s, p) => client.linkFacebookInstantGame(s, { signed_player_info: p.signed_player_info }),
      unlink: (s, p) => client.unlinkFacebookInstantGame(s, { signed_player_info: p.signed_player_info }),
    },
    gamecenter: {
      auth: (p, create, username) => client.authenticateGameCenter(...gc(p), username, create),
      link: (s, p) => client.linkGameCenter(s, p),
      unlink: (s, p) => client.unlinkGameCenter(s, p),
    },
    steam: {
      auth: (p, create, username) => client.authenticateSteam(p.token, create, username, true),
      link: (s, p) => client.linkSteam(s, { account: { token: p.token }, sync: true }),
      unlink: (s, p) => client.unlinkSteam(s, { token: p.token }),
    },
  };
  const out = {};
  for (const [scheme, p] of Object.entries(proofs)) {
    const call = calls[scheme];
    const field = p.field;
    const r = {};
    const device = await client.authenticateDevice("njs-device-for-" + scheme, true);
    // A provider that can't be reached: 502, and nothing changes. First,
    // before the server holds the provider's keys or certificate (held
    // ones keep working through an outage).
    if (p.outage) {
      const before = JSON.stringify(await client.getAccount(device));
      r.outage_control = (await fetch(process.env.STUB + "/control/outage?down=true", { method: "POST" })).status;
      if (r.outage_control !== 204) throw new Error("the stub's outage switch answered " + r.outage_control);
      r.outage_auth = await attempt(() => call.auth(p.outage, true));
      r.outage_link = await attempt(() => call.link(device, p.outage));
      await fetch(process.env.STUB + "/control/outage?down=false", { method: "POST" });
      r.outage_unchanged = before === JSON.stringify(await client.getAccount(device));
      r.outage_stranger_after = await attempt(() => call.auth(p.outage_check, false));
    }
    r.stranger = await attempt(() => call.auth(p.stranger, false));
    const first = await call.auth(p.first, true, "njs_" + scheme);
    r.created = first.created;
    r.username = first.username;
    r.id = (await client.getAccount(first)).user[field];
    const again = await call.auth(p.again, false);
    r.same_user = again.user_id === first.user_id;
    r.again_created = again.created;
    r.forged = [];
    for (const forged of p.forged) {
      r.forged.push(await attempt(() => call.auth(forged, true)));
    }
    r.linked = await call.link(device, p.link);
    r.linked_id = (await client.getAccount(device)).user[field];
    r.link_forged = await attempt(() => call.link(device, p.forged[0]));
    r.unlinked = await call.unlink(device, p.unlink);
    r.after_unlink = (await client.getAccount(device)).user[field] ?? null;
    r.last_identifier = await attempt(() => call.unlink(first, p.last));
    // A session from a provider login refreshes and logs out like any other.
    const refreshed = await client.sessionRefresh(first);
    r.refreshed_user = refreshed.user_id === first.user_id;
    r.logout = await client.sessionLogout(refreshed, refreshed.token, refreshed.refresh_token);
    r.after_logout = await attempt(() => client.getAccount(refreshed));
    out[scheme] = r;
  }
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error("FAILED", e && e.stack ? e.stack : e);
  process.exit(1);
});
