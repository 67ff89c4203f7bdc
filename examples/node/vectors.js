#!/usr/bin/env node
// Checks this client against tests/vectors/ offline (no Redis): keys.json key encodings, and for
// every read step of requests.json the KEYS/ARGV of each call and the decoded replies.
//   node vectors.js        exits 1 on the first mismatch, else prints a summary
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const lib = require('./feast_lua');

// FEAST_LUA_VECTORS: another copy of the vectors (the tests use it to check this can fail).
const VECTORS = process.env.FEAST_LUA_VECTORS || path.join(__dirname, '..', '..', 'tests', 'vectors');
const load = (name) => JSON.parse(fs.readFileSync(path.join(VECTORS, name), 'utf8'));
const hex = (buffers) => buffers.map((b) => Buffer.from(b).toString('hex'));

// Typed JSON -> a join key value: ints as BigInt (INT64 min/max come as strings), bytes from hex.
function joinKeyValue(valueType, v) {
  if (valueType === 'INT64' || valueType === 'INT32') return BigInt(v);
  return valueType === 'BYTES' ? Buffer.from(v, 'hex') : v;
}

// JSON equality that tells -0 from 0.
function same(a, b) {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    return same(Object.keys(a), Object.keys(b)) && Object.keys(a).every((k) => same(a[k], b[k]));
  }
  return Object.is(a, b);
}

let checked = 0;
const keys = load('keys.json');
for (const v of keys.keys) {
  const parts = v.entities.map((e) => ({ joinKey: e.join_key, valueType: e.value_type,
    value: joinKeyValue(e.value_type, e.value) }));
  assert.equal(lib.entityKey(v.project, parts, v.colocate || null).toString('hex'), v.key_hex, v.description);
  checked++;
}
for (const v of keys.registry_keys) {
  assert.equal(lib.registryKey(v.project).toString('hex'), v.key_hex, v.project);
  checked++;
}

const requests = load('requests.json');
let reads = 0;
for (const scenario of requests.scenarios) {
  let registry = null;
  for (const step of scenario.steps) {
    if (step.op === 'apply') registry = step.registry_after; // the document this client would read
    if (step.op !== 'read') continue;
    const where = `${scenario.name}/${step.name}`;
    const rows = step.entity_rows.map((row) => Object.fromEntries(Object.entries(row).map(
      ([k, v]) => [k, joinKeyValue(step.entity_types[k], v)])));
    const plan = lib.planRead(registry, step.feature_refs, rows, step.max_age_override_us || {});
    assert.deepEqual(plan.tables.map((t) => t.name), step.tables, where);
    assert.deepEqual(plan.groups, step.key_groups, where);
    const calls = lib.planCalls(plan, step.max_cells_per_call);
    assert.deepEqual(calls.map((k) => ({ keys: hex(k), argv: hex(plan.argv) })),
      step.calls.map((c) => ({ keys: c.keys_hex, argv: c.argv_hex })), `${where}: KEYS/ARGV`);
    const parts = step.calls.map((c) => lib.decodeReply(Buffer.from(c.reply_hex, 'hex'), plan.refs.length));
    parts.forEach((p, i) => {
      assert.deepEqual(p.statuses, step.calls[i].reply_parts.statuses, where);
      assert.deepEqual(p.eventTsUs.map(Number), step.calls[i].reply_parts.event_ts_us, where);
    });
    const got = lib.response(plan, rows, parts);
    for (const [ref, want] of Object.entries(step.expected)) {
      assert.deepEqual(got.statuses[ref], want.statuses, `${where} ${ref} statuses`);
      assert.ok(same(got[ref], want.values), `${where} ${ref} values: ${JSON.stringify(got[ref])}`
        + ` != ${JSON.stringify(want.values)}`);
      assert.deepEqual(got.event_timestamps[ref], want.event_timestamps, `${where} ${ref} event timestamps`);
    }
    assert.deepEqual(Object.keys(got.statuses), Object.keys(step.expected), where);
    reads++;
  }
}
console.log(`vectors ok: ${checked} keys, ${reads} reads`);
