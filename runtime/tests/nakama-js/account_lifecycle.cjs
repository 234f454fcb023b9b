// Drives the real nakama-js client against the rest of the account API:
// authenticateEmail as a username login, sessionRefresh with its default
// empty vars and with new ones, devices in getAccount, linkCustom replacing
// the custom id, and deleteAccount. Prints one JSON object;
// identity_nakama_js.rs asserts on it.
const { Client } = require(process.env.NAKAMA_JS);

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
  const client = new Client("defaultkey", host, port, false, 10000, false);
  const out = {};

  // Username login: authenticateEmail with no email, the username as its
  // `username` argument.
  const owner = await client.authenticateEmail("njs.owner@example.com", "password-njs1", true, "njs_owner");
  const byName = await client.authenticateEmail("", "password-njs1", false, "njs_owner", { via: "name" });
  out.username_login = {
    same_user: byName.user_id === owner.user_id,
    username: byName.username,
    created: byName.created,
    vars: byName.vars,
  };
  out.username_wrong_password = await refused(() =>
    client.authenticateEmail("", "wrong-password", false, "njs_owner"));
  out.username_unknown = await refused(() =>
    client.authenticateEmail("", "password-njs1", true, "njs_nobody"));

  // Device vars stay in the token; refresh keeps them unless given new ones.
  const player = await client.authenticateDevice("nakama-js-device-0010", true, "njs_player2", { lang: "pt" });
  out.devices = (await client.getAccount(player)).devices;
  await client.sessionRefresh(player);
  out.vars_after_default_refresh = player.vars;
  await client.sessionRefresh(player, { lang: "en" });
  out.vars_after_new_vars = player.vars;

  // linkCustom replaces the account's custom id.
  out.first_link = await client.linkCustom(player, { id: "njs-custom-0001" });
  out.second_link = await client.linkCustom(player, { id: "njs-custom-0002" });
  out.custom_id = (await client.getAccount(player)).custom_id;
  out.old_custom_login = await refused(() => client.authenticateCustom("njs-custom-0001", false));
  const byCustom = await client.authenticateCustom("njs-custom-0002", false);
  out.new_custom_same_user = byCustom.user_id === player.user_id;
  out.custom_taken = await refused(() => client.linkCustom(owner, { id: "njs-custom-0002" }));

  // deleteAccount: the account, its tokens and its identities go.
  const stale = { token: player.token, refresh: player.refresh_token };
  out.deleted = await client.deleteAccount(player);
  out.account_after_delete = await refused(() => client.getAccount(player));
  out.refresh_after_delete = await refused(() => client.sessionRefresh(player));
  out.delete_again = await refused(() => client.deleteAccount(player));
  out.custom_after_delete = await refused(() => client.authenticateCustom("njs-custom-0002", false));
  const fresh = await client.authenticateDevice("nakama-js-device-0010", true, "njs_player2");
  out.fresh = { created: fresh.created, new_user: fresh.user_id !== player.user_id, username: fresh.username };
  out.stale_token_unchanged = player.token === stale.token && player.refresh_token === stale.refresh;
  out.owner_still_there = (await client.getAccount(owner)).user.username;

  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error("nakama-js run failed:", e);
  process.exit(1);
});
