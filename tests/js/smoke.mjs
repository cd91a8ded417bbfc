// The official Svix JavaScript client against a running Hookpost: event types, app portal
// access and its scope, send-example, stats, the endpoint's messages, content expunge,
// operational webhook endpoints.
// Run by tests/test_svix_js.py with HOOKPOST_URL, HOOKPOST_TOKEN and RECEIVER_URL set.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Svix } from "svix";

const serverUrl = process.env.HOOKPOST_URL;
const svix = new Svix(process.env.HOOKPOST_TOKEN, { serverUrl });
const unique = (prefix) => `${prefix}-${randomBytes(4).toString("hex")}`;

async function refused(promise, status) {
  await assert.rejects(promise, (error) => error.code === status, `expected HTTP ${status}`);
}

// Event types
const name = unique("invoice.paid");
const schema = { type: "object", properties: { invoice: { type: "integer" } }, examples: [{ invoice: 7 }] };
const made = await svix.eventType.create({ name, description: "Paid", schemas: { 1: schema }, groupName: "billing" });
assert.equal(made.name, name);
assert.equal(made.groupName, "billing");
assert.ok(made.createdAt instanceof Date);
assert.equal((await svix.eventType.patch(name, { deprecated: true })).deprecated, true);
assert.equal((await svix.eventType.update(name, { description: "Paid v2", schemas: { 1: schema } })).description, "Paid v2");
const listed = await svix.eventType.list({ limit: 250 });
assert.ok(listed.data.some((eventType) => eventType.name === name));
const imported = await svix.eventType.importOpenapi({
  spec: { openapi: "3.1.0", webhooks: { [unique("order.shipped")]: { post: { summary: "Shipped" } } } },
  dryRun: true,
});
assert.equal(imported.data.modified.length, 1);

// An application, an endpoint that filters on the event type, and what it was sent
const app = await svix.application.create({ name: "JS", uid: unique("js") });
await refused(svix.endpoint.create(app.id, { url: `${process.env.RECEIVER_URL}/js`, filterTypes: ["never.declared"] }), 422);
const endpoint = await svix.endpoint.create(app.id, { url: `${process.env.RECEIVER_URL}/js`, filterTypes: [name] });
assert.deepEqual(endpoint.filterTypes, [name]);
const example = await svix.endpoint.sendExample(app.id, endpoint.id, { eventType: name });
assert.equal(example.eventType, name);
const stats = await svix.endpoint.getStats(app.id, endpoint.id);
assert.equal(stats.success + stats.pending + stats.sending + stats.fail, 1);
const attempted = await svix.messageAttempt.listAttemptedMessages(app.id, endpoint.id);
assert.equal(attempted.data[0].id, example.id);
await svix.message.expungeContent(app.id, example.id);

// App portal access: its own application only, then logged out
const other = await svix.application.create({ name: "Other" });
const access = await svix.authentication.appPortalAccess(app.id, { expiry: 3600 });
assert.ok(access.url.includes("#key="));
const portal = new Svix(access.token, { serverUrl });
assert.equal((await portal.endpoint.list(app.id)).data[0].id, endpoint.id);
await refused(portal.endpoint.list(other.id), 403);
await refused(portal.application.list(), 403);
await refused(portal.operationalWebhook.endpoint.list(), 403);
await portal.authentication.logout();
await refused(portal.endpoint.list(app.id), 401);

// Operational webhook endpoints: made, read by id and uid, listed, deleted
const ops = svix.operationalWebhook.endpoint;
const opsUid = unique("ops");
const opsEndpoint = await ops.create({ url: `${process.env.RECEIVER_URL}/ops`, uid: opsUid, filterTypes: ["endpoint.deleted"] });
assert.ok(opsEndpoint.id.startsWith("ep_"));
assert.deepEqual(opsEndpoint.filterTypes, ["endpoint.deleted"]);
assert.ok(opsEndpoint.createdAt instanceof Date);
assert.equal((await ops.get(opsEndpoint.id)).url, `${process.env.RECEIVER_URL}/ops`);
assert.equal((await ops.get(opsUid)).id, opsEndpoint.id);
assert.ok((await ops.list()).data.some((listedEndpoint) => listedEndpoint.id === opsEndpoint.id));
assert.ok((await ops.getSecret(opsEndpoint.id)).key.startsWith("whsec_"));
await ops.delete(opsEndpoint.id);
await refused(ops.get(opsEndpoint.id), 404);

await svix.eventType.delete(name);
assert.equal((await svix.eventType.get(name)).archived, true);
console.log("js smoke: ok");
