#!/usr/bin/env node
// Serves the seed example (feast_lua/demo.py's driver_trips) from Redis and prints it as JSON:
//   node serve.js --redis-url redis://127.0.0.1:6379 [--project default]
// Output: {"driver_id": [...], "<ref>": [...], ..., "statuses": {ref: [...]}, "event_timestamps": {...}}
'use strict';
const { parseArgs } = require('node:util');
const { createClient } = require('redis');
const { FeastLuaClient } = require('./feast_lua');

const REFS = ['driver_trips:average_daily_rides', 'driver_trips:maximum_daily_rides', 'driver_trips:rating'];
const ROWS = [1001, 1002, 1003, 1004].map((id) => ({ driver_id: id }));

async function main() {
  const { values } = parseArgs({ options: {
    'redis-url': { type: 'string', default: process.env.REDIS_URL || 'redis://127.0.0.1:6379' },
    project: { type: 'string', default: 'default' },
    help: { type: 'boolean', short: 'h' },
  } });
  if (values.help) {
    console.log('usage: node serve.js [--redis-url URL] [--project NAME]\n'
      + `Reads ${REFS.join(', ')} for driver_id 1001..1004 and prints the response as JSON.`);
    return;
  }
  const redis = createClient({ url: values['redis-url'], socket: { reconnectStrategy: false } });
  redis.on('error', () => {}); // connection errors surface on the command that hit them
  await redis.connect();
  try {
    const client = new FeastLuaClient(redis, { project: values.project });
    console.log(JSON.stringify(await client.getOnlineFeatures(REFS, ROWS)));
  } finally {
    await redis.close();
  }
}

main().catch((e) => { console.error(`serve.js: ${e.message}`); process.exitCode = 1; });
