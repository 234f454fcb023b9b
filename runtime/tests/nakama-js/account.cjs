// Drives the real nakama-js client against the server: updateAccount, then
// getAccount and getUsers (by id and by username) to read the change back,
// and a refused update. Prints one JSON object; identity_nakama_js.rs
// asserts on it.
const { Client } = require(process.env.NAKAMA_JS);

const status = (e) => (e && typeof e.status === "number" ? e.status : String(e));

(async () => {
  const [host, port] = process.argv[2].split(":");
  const client = new Client("defaultkey", host, port, false, 10000, false);
  const out = {};

  const me = await client.authenticateDevice("nakama-js-device-0002", true, "njs_ana");
  const other = await client.authenticateDevice("nakama-js-device-0003", true, "njs_bea");

  out.updated = await client.updateAccount(me, {
    username: "njs_ana2",
    display_name: "Ana",
    avatar_url: "https://cdn.test/ana.png",
    lang_tag: "pt-BR",
    location: "Lisbon",
    timezone: "Europe/Lisbon",
  });
  const user = (await client.getAccount(me)).user;
  out.account = {
    username: user.username,
    display_name: user.display_name,
    avatar_url: user.avatar_url,
    lang_tag: user.lang_tag,
    location: user.location,
    timezone: user.timezone,
  };

  const found = await client.getUsers(other, [me.user_id], ["njs_bea", "nobody_here"], []);
  out.found = found.users.map((u) => u.username).sort();
  out.found_location = found.users.find((u) => u.id === me.user_id)?.location;

  try {
    await client.updateAccount(me, { username: "njs_bea" });
    out.taken = "accepted";
  } catch (e) {
    out.taken = status(e);
  }
  out.username_after_refusal = (await client.getAccount(me)).user.username;

  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error("nakama-js run failed:", e);
  process.exit(1);
});
