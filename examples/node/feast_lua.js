// A feast-lua reader for Node.js, written from docs/PROTOCOL.md alone: key encoding, read
// KEYS/ARGV, EVALSHA_RO with NOSCRIPT -> SCRIPT LOAD, and reply decoding. Reads only; rows are
// written by the Python client (or any client that follows the protocol).
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { decode, decodeTimestampToTimeSpec, ExtensionCodec } = require('@msgpack/msgpack');
const { RESP_TYPES } = require('redis');

const STATUS = ['INVALID', 'PRESENT', 'NULL_VALUE', 'NOT_FOUND', 'OUTSIDE_MAX_AGE'];
const MAX_CELLS_PER_CALL = 20000; // entity rows x refs per call
const MAX_KEYS_PER_CALL = 4000; // entity rows x key groups per call
const LUA_DIR = path.join(__dirname, '..', '..', 'lua');

// Scripts: file bytes from lua/, each checked against the manifest's SHA-1.
function loadScripts(dir = LUA_DIR) {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const scripts = {};
  for (const [name, spec] of Object.entries(manifest.scripts)) {
    const source = fs.readFileSync(path.join(dir, spec.file));
    const sha = crypto.createHash('sha1').update(source).digest('hex');
    if (sha !== spec.sha1) throw new Error(`lua/${spec.file} does not match the manifest`);
    scripts[name] = { name, sha, source, flags: spec.flags };
  }
  return scripts;
}

// Keys: "{}fl:" netstr(project) { netstr(join_key) typed(value) }, join keys sorted by bytes.
const netstr = (bytes) => Buffer.concat([Buffer.from(`${bytes.length}:`), bytes]);
const registryKey = (project) => Buffer.concat([Buffer.from('{}fl:registry:'), netstr(Buffer.from(project))]);
const INT_RANGE = { INT64: [-(2n ** 63n), 2n ** 63n - 1n], INT32: [-(2n ** 31n), 2n ** 31n - 1n] };

function typed(valueType, value) {
  if (valueType in INT_RANGE) {
    const ok = typeof value === 'bigint' || (typeof value === 'number' && Number.isSafeInteger(value));
    const [lo, hi] = INT_RANGE[valueType];
    if (!ok || BigInt(value) < lo || BigInt(value) > hi) throw new TypeError(`not an ${valueType}: ${value}`);
    return Buffer.concat([Buffer.from('i'), netstr(Buffer.from(BigInt(value).toString()))]);
  }
  if (valueType === 'STRING' && typeof value === 'string') {
    return Buffer.concat([Buffer.from('s'), netstr(Buffer.from(value, 'utf8'))]);
  }
  if (valueType === 'BYTES' && value instanceof Uint8Array) {
    return Buffer.concat([Buffer.from('b'), netstr(Buffer.from(value))]);
  }
  throw new TypeError(`not a ${valueType} join key value: ${value}`);
}

// parts: [{ joinKey, valueType, value }], any order.
// colocate: the co-located join key, if any: its value's SHA-1 (16 hex digits) is the hash tag.
function entityKey(project, parts, colocate = null) {
  const sorted = [...parts].sort((a, b) => Buffer.compare(Buffer.from(a.joinKey), Buffer.from(b.joinKey)));
  let tag = '';
  if (colocate) {
    const part = sorted.find((p) => p.joinKey === colocate);
    tag = crypto.createHash('sha1').update(typed(part.valueType, part.value)).digest('hex').slice(0, 16);
  }
  return Buffer.concat([Buffer.from(`{${tag}}fl:`), netstr(Buffer.from(project)),
    ...sorted.map((p) => Buffer.concat([netstr(Buffer.from(p.joinKey)), typed(p.valueType, p.value)]))]);
}

// Read request: tables in order of first use by a ref, key groups in order of first use by a table.
function planRead(registry, refs, entityRows, maxAgeUs = {}) {
  if (!refs.length || new Set(refs).size !== refs.length) throw new Error('refs must be distinct, at least one');
  if (!entityRows.length) throw new Error('no entity rows');
  const tables = [], groups = [], slots = [];
  for (const ref of refs) {
    const [tableName, feature, extra] = ref.split(':');
    const table = registry.tables[tableName];
    const spec = table && table.features.find((f) => f.name === feature);
    if (extra !== undefined || !spec) throw new Error(`unknown feature ref ${ref}`);
    let t = tables.findIndex((x) => x.name === tableName);
    if (t < 0) {
      const joinKeys = [...table.entities].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      let g = groups.findIndex((x) => x.join(',') === joinKeys.join(','));
      if (g < 0) g = groups.push(joinKeys) - 1;
      const age = tableName in maxAgeUs ? maxAgeUs[tableName] : table.max_age_us;
      t = tables.push({ name: tableName, group: g, maxAgeUs: age }) - 1;
    }
    slots.push({ ref, table: t, slot: spec.slot, valueType: spec.value_type });
  }
  for (const [name, age] of Object.entries(maxAgeUs)) {
    if (!tables.some((t) => t.name === name) || !Number.isSafeInteger(age) || age < 0) {
      throw new Error(`bad max age override for ${name}: ${age}`);
    }
  }
  const keys = entityRows.flatMap((row) => groups.map((joinKeys) => entityKey(registry.project,
    joinKeys.map((k) => ({ joinKey: k, valueType: registry.entities[k].value_type, value: row[k] })),
    joinKeys.find((k) => registry.entities[k].colocate === true) || null)));
  const argv = [groups.length, tables.length, ...tables.flatMap((t) => [t.name, t.group + 1, t.maxAgeUs]),
    slots.length, ...slots.flatMap((s) => [s.table + 1, s.slot])].map((x) => Buffer.from(String(x)));
  const entityTypes = Object.fromEntries(groups.flat().map((k) => [k, registry.entities[k].value_type]));
  return { tables, groups, refs: slots, keys, argv, rows: entityRows.length, entityTypes };
}

// Splits a plan's KEYS by whole entity rows; every call has the same ARGV.
function planCalls(plan, maxCells = MAX_CELLS_PER_CALL, maxKeys = MAX_KEYS_PER_CALL) {
  const G = plan.groups.length;
  const perCall = Math.max(1, Math.min(Math.floor(maxCells / plan.refs.length), Math.floor(maxKeys / G)));
  const calls = [];
  for (let r = 0; r < plan.rows; r += perCall) calls.push(plan.keys.slice(r * G, (r + perCall) * G));
  return calls;
}

// Reply: msgpack [now_us, statuses bin, event_ts bin (big-endian i64 per row and table), values].
class Timestamp { constructor(us) { this.us = us; } } // UNIX_TIMESTAMP values, in µs (BigInt)
const codec = new ExtensionCodec();
codec.register({ type: -1, encode: () => null, decode: (data) => {
  const { sec, nsec } = decodeTimestampToTimeSpec(data);
  return new Timestamp(BigInt(sec) * 1000000n + BigInt(Math.floor(nsec / 1000)));
} });
function decodeReply(reply, refCount) {
  const [nowUs, statuses, stamps, values] = decode(reply, { extensionCodec: codec, useBigInt64: true });
  const view = Buffer.from(stamps.buffer, stamps.byteOffset, stamps.byteLength);
  const eventTsUs = [];
  for (let i = 0; i < view.length; i += 8) eventTsUs.push(view.readBigInt64BE(i));
  return { nowUs: BigInt(nowUs), statuses: [...statuses], eventTsUs, values, rows: statuses.length / refCount };
}

// JSON forms (the vectors' "value_json"): big ints as strings, bytes as hex, timestamps RFC 3339.
function rfc3339(us) {
  const sec = us >= 0n ? us / 1000000n : -((-us + 999999n) / 1000000n);
  const frac = String(us - sec * 1000000n).padStart(6, '0');
  return new Date(Number(sec) * 1000).toISOString().replace(/\.\d{3}Z$/, `.${frac}Z`);
}
function toJson(valueType, v) {
  if (v === null || v === undefined) return null;
  if (valueType.endsWith('_LIST')) return v.map((x) => toJson(valueType.slice(0, -5), x));
  if (typeof v === 'bigint') return v >= -(2n ** 53n - 1n) && v <= 2n ** 53n - 1n ? Number(v) : v.toString();
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (v instanceof Timestamp) return rfc3339(v.us);
  return v;
}

// Joins decoded replies into columns: entity columns, one per ref, statuses, event timestamps.
function response(plan, entityRows, parts) {
  const F = plan.refs.length, T = plan.tables.length;
  const statuses = parts.flatMap((p) => p.statuses), values = parts.flatMap((p) => p.values);
  const stamps = parts.flatMap((p) => p.eventTsUs);
  const out = {};
  for (const name of Object.keys(entityRows[0])) {
    out[name] = entityRows.map((row) => toJson(plan.entityTypes[name] || 'STRING', row[name]));
  }
  const byRef = { statuses: {}, event_timestamps: {} }, rows = [...entityRows.keys()];
  plan.refs.forEach((ref, f) => {
    out[ref.ref] = rows.map((r) => toJson(ref.valueType, values[r * F + f]));
    byRef.statuses[ref.ref] = rows.map((r) => STATUS[statuses[r * F + f]]);
    byRef.event_timestamps[ref.ref] = rows.map((r) => (statuses[r * F + f] === 3 ? null
      : rfc3339(stamps[r * T + ref.table]))); // NOT_FOUND: no event timestamp, as in Python
  });
  return Object.assign(out, byRef);
}

class FeastLuaClient {
  constructor(redis, { project = 'default', scripts = loadScripts() } = {}) {
    Object.assign(this, { redis, project, scripts });
  }

  async registry() {
    const doc = await this.redis.sendCommand(['HGET', registryKey(this.project), 'doc']);
    if (doc === null) throw new Error(`project ${this.project} has no registry`);
    return JSON.parse(doc);
  }

  // EVALSHA_RO for read (no-writes), EVALSHA otherwise; on NOSCRIPT load the script and resend.
  async call(name, keys, argv) {
    const script = this.scripts[name];
    const command = script.flags.includes('no-writes') ? 'EVALSHA_RO' : 'EVALSHA';
    const args = [command, script.sha, String(keys.length), ...keys, ...argv];
    for (let attempt = 1; ; attempt++) {
      try {
        // The reply is binary: take bulk strings as Buffers, never as text.
        return await this.redis.sendCommand(args, { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } });
      } catch (e) {
        if (!String(e.message).startsWith('NOSCRIPT') || attempt === 4) throw e;
        const sha = await this.redis.sendCommand(['SCRIPT', 'LOAD', script.source]);
        if (sha !== script.sha) throw new Error(`Redis computed SHA ${sha} for ${name}`);
      }
    }
  }

  // maxAgeUs: { table: µs } overrides (0 lifts the limit for this call).
  async getOnlineFeatures(refs, entityRows, maxAgeUs = {}) {
    const plan = planRead(await this.registry(), refs, entityRows, maxAgeUs);
    const G = plan.groups.length, parts = [];
    for (let keys of planCalls(plan)) {
      while (keys.length > 0) { // a reply past the byte budget answers its first rows only
        const part = decodeReply(await this.call('read', keys, plan.argv), plan.refs.length);
        if (part.rows < 1) throw new Error('the read script answered for no entity row');
        parts.push(part);
        keys = keys.slice(part.rows * G);
      }
    }
    return response(plan, entityRows, parts);
  }
}

module.exports = { FeastLuaClient, loadScripts, registryKey, entityKey, planRead, planCalls, decodeReply,
  response, toJson, rfc3339, STATUS };
