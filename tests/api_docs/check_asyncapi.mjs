// Checks docs/asyncapi.yaml (run by tests/api_docs/run.sh; Node 20):
// 1. the AsyncAPI parser (@asyncapi/parser: the spec's JSON schema and its rules) reports no
//    error;
// 2. every fixture of protocol/tests/fixtures/{client,server} matches exactly one message the
//    document lets that side send (client frames: `receive` operations, server frames: `send`),
//    with no field the document does not name (every object schema is made closed for the
//    check: the protocol lets peers ignore unknown fields, but the document must name them all);
// 3. every message of the document has a fixture;
// 4. its ErrorCode and CloseCode schemas list exactly the codes of protocol/src/error.rs and
//    protocol/src/close.rs.
// Exits non-zero with a list of every problem found.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Parser } from '@asyncapi/parser';
import Ajv from 'ajv';

const root = process.argv[2] ?? '.';
const problems = [];

const parser = new Parser();
const { document, diagnostics } = await parser.parse(
  readFileSync(join(root, 'docs/asyncapi.yaml'), 'utf8'),
);
for (const d of diagnostics) {
  // Spectral severities: 0 error, 1 warning, 2 information, 3 hint.
  const line = `${['error', 'warning', 'info', 'hint'][d.severity]} ${d.code}: ${d.message} at ${d.path.join('.')}`;
  if (d.severity <= 1) problems.push(`asyncapi.yaml: ${line}`);
}
if (!document) {
  console.error(problems.join('\n'));
  process.exit(1);
}

/** `schema` (a dereferenced JSON schema) with every object schema closed. */
function closed(schema) {
  if (Array.isArray(schema)) return schema.map(closed);
  if (schema === null || typeof schema !== 'object') return schema;
  const out = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith('x-parser-')) continue;
    out[key] = key === 'const' || key === 'enum' ? value : closed(value);
  }
  if (out.type === 'object' && out.properties && !('additionalProperties' in out)) {
    out.additionalProperties = false;
  }
  return out;
}

const ajv = new Ajv({ strict: false, allErrors: true });
// side -> [{ name, validate }]
const messages = { client: [], server: [] };
for (const operation of document.operations().all()) {
  const side = operation.action() === 'receive' ? 'client' : 'server';
  const lists = [operation.messages().all()];
  const reply = operation.reply();
  if (reply) lists.push(reply.messages().all());
  lists.forEach((list, i) => {
    // A reply's messages are the server's, whatever the operation.
    const who = i === 0 ? side : 'server';
    for (const message of list) {
      const name = message.id();
      if (messages[who].some((m) => m.name === name)) continue;
      const payload = message.payload()?.json();
      if (!payload) {
        problems.push(`message ${name} has no payload`);
        continue;
      }
      messages[who].push({ name, validate: ajv.compile(closed(payload)), used: 0 });
    }
  });
}

for (const side of ['client', 'server']) {
  const dir = join(root, 'protocol/tests/fixtures', side);
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  if (files.length === 0) problems.push(`no fixtures in ${dir}`);
  for (const file of files) {
    const frame = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    const matches = messages[side].filter((m) => m.validate(frame));
    if (matches.length !== 1) {
      const why = messages[side]
        .map((m) => (m.validate(frame), `  ${m.name}: ${ajv.errorsText(m.validate.errors)}`))
        .filter((text) => text.includes(`${side}_${frame.type}:`) || text.includes(`${frame.type}:`));
      problems.push(
        `${side}/${file} matches ${matches.length} ${side} messages` +
          (matches.length ? ` (${matches.map((m) => m.name).join(', ')})` : '') +
          (why.length ? `:\n${why.join('\n')}` : ''),
      );
    }
    for (const m of matches) m.used += 1;
  }
  for (const m of messages[side]) {
    if (m.used === 0) problems.push(`message ${m.name} (${side}) has no fixture`);
  }
}

/** The `const`s of a `oneOf` schema of the document's components. */
function consts(name) {
  const schema = document.components().schemas().get(name)?.json();
  return (schema?.oneOf ?? []).map((s) => String(s.const)).sort();
}

function same(what, documented, fromCode) {
  const a = JSON.stringify(documented);
  const b = JSON.stringify([...fromCode].sort());
  if (a !== b) problems.push(`${what}: the document has ${a}, the code ${b}`);
}

const errorRs = readFileSync(join(root, 'protocol/src/error.rs'), 'utf8');
const asStr = errorRs.slice(errorRs.indexOf('fn as_str'), errorRs.indexOf('fn http_status'));
same('ErrorCode', consts('ErrorCode'), [...asStr.matchAll(/=> "([a-z_]+)"/g)].map((m) => m[1]));
const closeRs = readFileSync(join(root, 'protocol/src/close.rs'), 'utf8');
same('CloseCode', consts('CloseCode'), [...closeRs.matchAll(/pub const \w+: u16 = (\d+);/g)].map((m) => m[1]));

const count = messages.client.length + messages.server.length;
if (problems.length) {
  console.error(`docs/asyncapi.yaml: ${problems.length} problem(s):\n${problems.join('\n')}`);
  process.exit(1);
}
console.log(`docs/asyncapi.yaml: valid AsyncAPI ${document.version()}, ${count} messages, every fixture matched`);
