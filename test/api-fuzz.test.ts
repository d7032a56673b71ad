/**
 * API abuse (issue 7): a property-based fuzzer driven by the live GET /openapi.json of the real
 * coordinator over real node daemons. For every route and method it builds a request from the
 * route's schemas and breaks it with at least one mutation that makes it invalid by construction
 * (unknown, `__proto__` and `constructor` fields, wrong types, 10k-deep nesting, huge numbers,
 * non-UTF-8 bytes, wrong content types, bodies over the limit, huge headers, bad tokens and
 * Idempotency-Keys, malformed paths), sent over a raw socket so that every byte is ours.
 *
 * Properties, per request: never a 5xx; every non-2xx is an application/problem+json with a
 * `code` and the HTTP status; keys and tokens (GET /v1/keys, /v1/keys/{id}, /v1/tokens) are as
 * before; every request the server parsed to a non-public route leaves exactly one `request`
 * record in GET /v1/audit with its method, status and caller, except unauthenticated failures,
 * which are counted into one `auth-failures` record per source and minute (review M-3). Routes that
 * use or change a key take no bearer token (issue 12): a valid token there is refused (401) and
 * named. Slow senders are cut off by the server's request timeout with a problem document, and
 * nothing they sent is acted on.
 */
import { connect } from 'node:net';
import fc from 'fast-check';
import { propertyOptions, propertyRunFactor } from './helpers/properties.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedHeaders } from '../client/sign-request.ts';
import { ADMIN_TOKEN, type ClusterCoordinator, startClusterCoordinator } from './helpers/coordinator.ts';

const REQUEST_TIMEOUT_MS = 1_500;
const BODY_LIMIT = 192 * 1024;

type Schema = Record<string, any>;
type Op = { method: string; path: string; params: Schema[]; body: Schema | undefined; public: boolean };
type RawAnswer = { status: number; headers: Record<string, string>; body: string; closedAfterMs: number };

let cc: ClusterCoordinator;
let host: string;
let port: number;
let ops: Op[];
let keyId: string;
let observer: string; // admin token used only to observe (its audit records are set aside)
let observerId: string;
let signer: { token: string; id: string };
let auditCursor = 0;

/** One HTTP/1.1 exchange over a fresh socket: our bytes exactly, the server's answer as sent. */
function rawExchange(
  chunks: (Buffer | string)[],
  o: { gapMs?: number; limitMs?: number } = {},
): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = connect(port, host);
    const got: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(limit);
      s.destroy();
      const all = Buffer.concat(got);
      const sep = all.indexOf('\r\n\r\n');
      const head = (sep < 0 ? all : all.subarray(0, sep)).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of head.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0),
        headers,
        body: sep < 0 ? '' : all.subarray(sep + 4).toString('utf8'),
        closedAfterMs: performance.now() - t0,
      });
    };
    const limit = setTimeout(finish, o.limitMs ?? 10_000);
    s.on('data', (d: Buffer) => got.push(d));
    s.on('close', finish);
    s.on('error', () => {});
    s.on('connect', async () => {
      for (const c of chunks) {
        if (s.destroyed) return;
        s.write(c);
        if (o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs));
      }
    });
  });
}

type Req = {
  method: string;
  target: string;
  headers: [string, string][];
  body?: Buffer;
  /** Whether the server parses this as an HTTP request (so an audit record is due on a non-public route). */
  parsed: boolean;
  /** Token whose caller the audit record must name, null: none, undefined: not a valid token. */
  caller: string | null | undefined;
  note: string;
};

function encode(r: Req): Buffer {
  const lines = [`${r.method} ${r.target} HTTP/1.1`, `host: ${host}:${port}`, 'connection: close'];
  for (const [k, v] of r.headers) lines.push(`${k}: ${v}`);
  if (r.body) lines.push(`content-length: ${r.body.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), r.body ?? Buffer.alloc(0)]);
}

// ---- values from the schemas ----------------------------------------------------------------

function valid(s: Schema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!s) return fc.constant(undefined);
  if (s.oneOf) return fc.oneof(...(s.oneOf as Schema[]).map((x) => valid(x, depth)));
  if (s.enum) return fc.constantFrom(...(s.enum as unknown[]));
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'string':
      if (s.pattern) {
        const re = new RegExp(s.pattern);
        return fc
          .stringMatching(re)
          .filter((v) => v.length <= (s.maxLength ?? 200) && v.length >= (s.minLength ?? 0));
      }
      return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 32, 32) });
    case 'integer':
      return fc.integer({ min: s.minimum ?? -1000, max: Math.min(s.maximum ?? 1000, 1000) });
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.uniqueArray(valid(s.items, depth + 1), {
        minLength: s.minItems ?? 0,
        maxLength: Math.max(s.minItems ?? 0, 3),
        selector: (v) => JSON.stringify(v),
      });
    case 'object': {
      const props = Object.entries((s.properties ?? {}) as Record<string, Schema>);
      const req = new Set((s.required ?? []) as string[]);
      return fc.record(Object.fromEntries(props.map(([k, v]) => [k, valid(v, depth + 1)])), {
        requiredKeys: props.map(([k]) => k).filter((k) => req.has(k)),
      });
    }
    default:
      return fc.constant(null);
  }
}

/** JSON types a schema allows ('integer' also admits 'number' values that are whole). */
function allowedTypes(s: Schema): Set<string> {
  if (s.oneOf) return new Set((s.oneOf as Schema[]).flatMap((x) => [...allowedTypes(x)]));
  if (s.enum) return new Set((s.enum as unknown[]).map((v) => (v === null ? 'null' : typeof v)));
  return new Set(Array.isArray(s.type) ? s.type : [s.type]);
}

const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
const deepObj = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;

/** A raw JSON text for a value of a type the schema does not allow. */
function wrongTypeJson(s: Schema): fc.Arbitrary<string> {
  const allowed = allowedTypes(s);
  const choices: fc.Arbitrary<string>[] = [];
  if (!allowed.has('string'))
    choices.push(fc.constantFrom('"1"', '"NaN"', '"-0"', '"1e400"', '"Infinity"', '""'));
  if (!allowed.has('integer') && !allowed.has('number'))
    choices.push(fc.constantFrom('0', '-0', '1e400', '-1e400', '9007199254740993', '2'));
  if (allowed.has('integer')) {
    // Out of the integer's range or not whole: still the wrong value for it.
    const huge = ['1e400', '-1e400', '1.5', '1e-400', '123456789012345678901234567890'];
    if ((s.minimum ?? -1) > 0) huge.push('-0', '0');
    choices.push(fc.constantFrom(...huge));
  }
  if (!allowed.has('boolean')) choices.push(fc.constantFrom('true', 'false'));
  if (!allowed.has('null')) choices.push(fc.constant('null'));
  if (!allowed.has('array')) choices.push(fc.constantFrom('[]', '["a"]', deep(10_000)));
  else choices.push(fc.constantFrom(deep(10_000), '[[1]]', '[1e400]'));
  if (!allowed.has('object')) choices.push(fc.constantFrom('{}', '{"__proto__":{}}', deepObj(10_000)));
  return fc.oneof(...choices);
}

// ---- mutations ------------------------------------------------------------------------------

type Mutation =
  | { kind: 'unknown-field'; name: string; json: string }
  | { kind: 'proto'; json: string }
  | { kind: 'constructor' }
  | { kind: 'wrong-type'; prop: string; json: string }
  | { kind: 'not-an-object'; json: string }
  | { kind: 'truncated' }
  | { kind: 'non-utf8'; bytes: readonly number[]; prop?: string }
  | { kind: 'content-type'; type: string }
  | { kind: 'too-large' }
  | { kind: 'huge-header' }
  | { kind: 'bad-auth'; value: string | null }
  | { kind: 'bad-idempotency-key'; value: string }
  | { kind: 'absent-key'; id: string }
  | { kind: 'bad-path'; segment: string }
  | { kind: 'bad-query'; query: string };

function mutations(op: Op): fc.Arbitrary<Mutation> {
  const m: fc.Arbitrary<Mutation>[] = [
    fc.constant({ kind: 'huge-header' } as const),
    fc
      .constantFrom(
        null,
        'Bearer',
        'Bearer ',
        'Basic YWRtaW46YWRtaW4=',
        `Bearer ${ADMIN_TOKEN}x`,
        `bearer  ${'k'.repeat(4000)}`,
        'Bearer kms_0000000000000000_' + 'A'.repeat(43),
      )
      .map((value) => ({ kind: 'bad-auth', value }) as const),
  ];
  const hasKey = op.params.some((p) => p.in === 'path' && p.name === 'keyId');
  const hasPath = op.params.some((p) => p.in === 'path');
  if (hasKey)
    m.push(
      fc
        .stringMatching(/^[a-z][a-z0-9]{0,20}$/)
        .map((id) => ({ kind: 'absent-key', id: `zz${id}` }) as const),
    );
  if (hasPath)
    m.push(
      fc
        .constantFrom(
          '%ff%fe',
          '%00',
          '%',
          '%E0%A4%A',
          '..%2f..%2fetc',
          'a'.repeat(300),
          '%C0%AF',
          '__proto__',
          'é',
          '%F0%9F%92%A9',
        )
        .map((segment) => ({ kind: 'bad-path', segment }) as const),
    );
  if (op.method === 'get' && !op.public && op.params.some((p) => p.in === 'query'))
    m.push(
      fc
        .constantFrom(
          'limit=0',
          'limit=-1',
          'limit=1e400',
          'limit=NaN',
          'after=%ff',
          'keyId=x',
          'limit=1&limit=2',
          '__proto__=1',
          `nextToken=${'n'.repeat(100)}`,
          'unknown=1',
          'limit[]=1',
        )
        .map((query) => ({ kind: 'bad-query', query }) as const),
    );
  if (op.body) {
    const props = Object.entries((op.body.properties ?? {}) as Record<string, Schema>);
    m.push(
      fc
        .tuple(
          fc.stringMatching(/^[A-Za-z_$][A-Za-z0-9_$]{0,15}$/),
          fc.constantFrom('1', '"x"', 'null', '{}', deep(10_000), deepObj(10_000), '1e400'),
        )
        .filter(([name]) => !props.some(([k]) => k === name))
        .map(([name, json]) => ({ kind: 'unknown-field', name, json }) as const),
      fc
        .constantFrom('{}', '{"isAdmin":true}', '{"role":"admin"}')
        .map((json) => ({ kind: 'proto', json }) as const),
      fc.constant({ kind: 'constructor' } as const),
      fc
        .constantFrom('null', '[]', '"x"', '1', 'true', '1e400', deep(10_000), '[{}]')
        .map((json) => ({ kind: 'not-an-object', json }) as const),
      fc.constant({ kind: 'truncated' } as const),
      fc.constant({ kind: 'too-large' } as const),
      fc
        .constantFrom(
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          'application/xml',
          'application/octet-stream',
          'application/jsonx',
          'json',
        )
        .map((type) => ({ kind: 'content-type', type }) as const),
      fc
        .constantFrom<readonly number[]>(
          [0xff],
          [0xfe, 0xff],
          [0xc3],
          [0xed, 0xa0, 0x80],
          [0xc0, 0xaf],
          [0xf8, 0x88, 0x80, 0x80, 0x80],
        )
        .map((bytes): Mutation => ({ kind: 'non-utf8', bytes })),
      fc
        .constantFrom('', '\u0001', 'x'.repeat(300), 'a b')
        .map((value) => ({ kind: 'bad-idempotency-key', value }) as const),
    );
    if (props.length > 0)
      m.push(
        fc
          .constantFrom(...props)
          .chain(([prop, s]) =>
            wrongTypeJson(s).map((json) => ({ kind: 'wrong-type', prop, json }) as const),
          ),
      );
  }
  return fc.oneof(...m);
}

/** Builds the request: a schema-valid base broken by the mutation. */
function build(
  op: Op,
  base: Record<string, unknown> | undefined,
  pathVals: Record<string, string>,
  mu: Mutation,
  token: 'admin' | 'signer',
): Req {
  const tok = token === 'admin' ? ADMIN_TOKEN : signer.token;
  let caller: string | null | undefined = token === 'admin' ? 'bootstrap-admin' : signer.id;
  const headers: [string, string][] = [];
  let path = op.path;
  for (const [k, v] of Object.entries(pathVals)) path = path.replace(`{${k}}`, encodeURIComponent(v));
  if (mu.kind === 'absent-key') path = op.path.replace('{keyId}', mu.id);
  if (mu.kind === 'bad-path') path = op.path.replace(/\{[^}]+\}/, mu.segment);
  let target = path;
  if (mu.kind === 'bad-query') target = `${path}?${mu.query}`;
  if (op.public) caller = null;
  if (mu.kind === 'bad-auth') {
    if (mu.value !== null) headers.push(['authorization', mu.value]);
    caller = null;
  } else if (!op.public) headers.push(['authorization', `Bearer ${tok}`]);
  if (mu.kind === 'huge-header') headers.push(['x-padding', 'p'.repeat(70_000)]);
  if (mu.kind === 'bad-idempotency-key') headers.push(['idempotency-key', mu.value]);
  let body: Buffer | undefined;
  if (op.body) {
    let json = JSON.stringify(base ?? {});
    const insert = (extra: string) => (json === '{}' ? `{${extra}}` : `{${extra},${json.slice(1)}`);
    switch (mu.kind) {
      case 'unknown-field':
        json = insert(`${JSON.stringify(mu.name)}:${mu.json}`);
        break;
      case 'proto':
        json = insert(`"__proto__":${mu.json}`);
        break;
      case 'constructor':
        json = insert('"constructor":{"prototype":{"polluted":true}}');
        break;
      case 'wrong-type': {
        const o = { ...(base ?? {}) };
        delete o[mu.prop];
        json = JSON.stringify(o);
        json = insert(`${JSON.stringify(mu.prop)}:${mu.json}`);
        break;
      }
      case 'not-an-object':
        json = mu.json;
        break;
      case 'truncated':
        json = json.slice(0, Math.max(1, json.length - 1));
        break;
      case 'too-large':
        json = insert(`"pad":"${'a'.repeat(BODY_LIMIT + 1)}"`);
        break;
    }
    body = Buffer.from(json);
    if (mu.kind === 'non-utf8') {
      // Invalid UTF-8 inside a string value (or a new field when the base has no string).
      const bad = Buffer.from(mu.bytes);
      // q: where '":"' starts, i.e. q + 3 is just inside the (chosen) string value.
      const q =
        mu.prop === undefined
          ? json.indexOf('":"')
          : json.indexOf(`${JSON.stringify(mu.prop)}:"`) + mu.prop.length + 1;
      body =
        q >= 0
          ? Buffer.concat([Buffer.from(json.slice(0, q + 3)), bad, Buffer.from(json.slice(q + 3))])
          : Buffer.concat([
              Buffer.from('{"x":"'),
              bad,
              Buffer.from(json === '{}' ? '"}' : `",${json.slice(1)}`),
            ]);
    }
    headers.push(['content-type', mu.kind === 'content-type' ? mu.type : 'application/json']);
  }
  // Node's HTTP parser refuses these itself (clientError), before any route or hook.
  const parsed =
    mu.kind !== 'huge-header' &&
    !/[^\x21-\x7e]/.test(target) &&
    headers.every(([, v]) => !/[^\x20-\x7e]/.test(v));
  return {
    method: op.method.toUpperCase(),
    target,
    headers,
    ...(body ? { body } : {}),
    parsed,
    caller,
    note: `${op.method} ${op.path} ${JSON.stringify(mu).slice(0, 120)}`,
  };
}

// ---- observations ---------------------------------------------------------------------------

async function snapshot(): Promise<string> {
  const keys = await cc.call('GET', '/v1/keys?limit=1000', undefined, { token: observer });
  const tokens = await cc.call('GET', '/v1/tokens', undefined, { token: observer });
  const one = await cc.call('GET', `/v1/keys/${keyId}`, undefined, { token: observer });
  expect([keys.status, tokens.status, one.status]).toEqual([200, 200, 200]);
  return JSON.stringify([keys.body, tokens.body, one.body]);
}

/** Records written since the last call, other than the observer's own. */
async function newRecords(): Promise<any[]> {
  const r = await cc.call('GET', `/v1/audit?after=${auditCursor}&limit=1000`, undefined, { token: observer });
  expect(r.status).toBe(200);
  const recs = r.body.records as any[];
  if (recs.length > 0) auditCursor = recs.at(-1).seq;
  return recs.filter((x) => x.entry.caller?.tokenId !== observerId);
}

/** Request records written since the last call, other than the observer's own. */
async function newAuditRecords(): Promise<any[]> {
  return (await newRecords()).filter((x) => x.entry.type === 'request');
}

/** Unauthenticated failures counted since the last call (aggregates flushed now). */
async function newFailureCount(): Promise<{ count: number; routes: string[] }> {
  await cc.context.authFailures.flush();
  const aggregates = (await newRecords()).filter((x) => x.entry.type === 'auth-failures');
  return {
    count: aggregates.reduce((n, x) => n + x.entry.count, 0),
    routes: aggregates.flatMap((x) => x.entry.routes),
  };
}

function expectProblem(a: RawAnswer, note: string): void {
  expect(a.status, note).toBeGreaterThanOrEqual(100);
  expect(a.status, `${note}: ${a.body.slice(0, 300)}`).toBeLessThan(500);
  if (a.status >= 300) {
    expect(a.headers['content-type'], `${note}: ${a.body.slice(0, 200)}`).toMatch(
      /^application\/problem\+json/,
    );
    const p = JSON.parse(a.body);
    expect(typeof p.code, note).toBe('string');
    expect(p.status, note).toBe(a.status);
  }
}

/** The properties every broken request must keep. */
async function checkBroken(op: Op, r: Req, before: string): Promise<void> {
  const a = await rawExchange([encode(r)]);
  expectProblem(a, r.note);
  // Every mutation breaks the request, except a bad token on a public route (it needs none).
  if (!op.public || !r.parsed) expect(a.status, r.note).toBeGreaterThanOrEqual(400);
  expect(await snapshot(), r.note).toBe(before);
  const recs = await newAuditRecords();
  if (!r.parsed || op.public) {
    expect(recs, r.note).toEqual([]);
    return;
  }
  if (r.caller === null) {
    // Unauthenticated: no record of its own, one more in its source's aggregate (M-3).
    expect(recs, r.note).toEqual([]);
    const f = await newFailureCount();
    expect(f.count, r.note).toBe(1);
    expect(f.routes[0], r.note).toMatch(new RegExp(`^${r.method} `));
    return;
  }
  expect(recs.length, `${r.note}: ${JSON.stringify(recs)}`).toBe(1);
  const e = recs[0].entry;
  expect(e.method, r.note).toBe(r.method);
  expect(e.status, r.note).toBe(a.status);
  expect(e.caller?.tokenId, r.note).toBe(r.caller);
}

const opOf = (method: string, path: string) => {
  const op = ops.find((o) => o.method === method && o.path === path);
  if (!op) throw new Error(`no ${method} ${path} in the OpenAPI document`);
  return op;
};

beforeAll(async () => {
  cc = await startClusterCoordinator(3, { config: { requestTimeoutMs: REQUEST_TIMEOUT_MS } });
  const u = new URL(cc.url);
  host = u.hostname;
  port = Number(u.port);
  const doc = await cc.call('GET', '/openapi.json', undefined, { token: null });
  expect(doc.status).toBe(200);
  ops = [];
  for (const [path, methods] of Object.entries(doc.body.paths as Record<string, Record<string, any>>)) {
    for (const [method, o] of Object.entries(methods)) {
      ops.push({
        method,
        path,
        params: o.parameters ?? [],
        body: o.requestBody?.content?.['application/json']?.schema,
        public: !o.security || o.security.length === 0,
      });
    }
  }
  const k = await cc.call('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, alias: 'fuzz-key' });
  expect(k.status, k.text).toBe(201);
  keyId = k.body.keyId;
  const ob = await cc.call('POST', '/v1/tokens', { role: 'admin', name: 'fuzz observer' });
  observer = ob.body.token;
  observerId = ob.body.tokenId;
  const sg = await cc.call('POST', '/v1/tokens', { role: 'signer', name: 'fuzz signer', keyIds: [keyId] });
  signer = { token: sg.body.token, id: sg.body.tokenId };
  await newAuditRecords();
}, 60_000);
afterAll(async () => {
  await cc?.stop();
}, 30_000);

describe('API fuzzer over the OpenAPI document', () => {
  it('covers every route of the document, and every request body is a closed object', () => {
    expect(ops.length).toBeGreaterThanOrEqual(20);
    for (const op of ops)
      if (op.body) expect(op.body.additionalProperties, `${op.method} ${op.path}`).toBe(false);
  });

  it(
    'broken requests to every route: never a 5xx, always a problem, no state change, one audit record each',
    async () => {
      const before = await snapshot();
      await newAuditRecords(); // start from here, whatever an earlier test left
      const t0 = performance.now();
      let cases = 0;
      for (const op of ops) {
        const pathVals = fc.record(
          Object.fromEntries(
            op.params
              .filter((p) => p.in === 'path')
              .map((p) => [
                p.name,
                p.name === 'keyId' ? fc.constantFrom(keyId, 'fuzz-key') : valid(p.schema),
              ]),
          ),
        ) as fc.Arbitrary<Record<string, string>>;
        await fc.assert(
          fc.asyncProperty(
            valid(op.body) as fc.Arbitrary<Record<string, unknown> | undefined>,
            pathVals,
            mutations(op),
            fc.constantFrom('admin' as const, 'signer' as const),
            async (base, pv, mu, token) => {
              cases++;
              await checkBroken(op, build(op, base, pv, mu, token), before);
            },
          ),
          propertyOptions(op.body ? 25 : 10, { endOnFailure: true }),
        );
      }
      console.info(
        `api fuzz: ${cases} requests over ${ops.length} routes in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
    },
    90_000 * propertyRunFactor(),
  );

  it('known abuses, each once (regressions of the bugs this fuzzer found)', async () => {
    const before = await snapshot();
    await newAuditRecords(); // start from here, whatever an earlier test left
    const key = { keyId };
    const cases: [Op, Record<string, unknown> | undefined, Record<string, string>, Mutation][] = [
      // A valid create whose description holds invalid UTF-8 used to create a key (U+FFFD).
      [
        opOf('post', '/v1/keys'),
        { keySpec: 'FROST_ED25519', threshold: 2, description: 'd' },
        {},
        { kind: 'non-utf8', bytes: [0xff, 0xfe], prop: 'description' },
      ],
      // A JSON `null` body used to count as "no body" and disable the key.
      [opOf('post', '/v1/keys/{keyId}/disable'), {}, key, { kind: 'not-an-object', json: 'null' }],
      [opOf('post', '/v1/keys/{keyId}/schedule-deletion'), {}, key, { kind: 'not-an-object', json: 'null' }],
      // A malformed percent-encoding used to be answered without an audit record.
      [opOf('get', '/v1/keys/{keyId}'), undefined, key, { kind: 'bad-path', segment: '%ff%fe' }],
      [
        opOf('post', '/v1/keys/{keyId}/sign'),
        { message: '00' },
        key,
        { kind: 'bad-path', segment: '%E0%A4%A' },
      ],
      // Oversized headers used to get fastify's plain JSON, not a problem document.
      [opOf('get', '/v1/keys'), undefined, {}, { kind: 'huge-header' }],
      [
        opOf('post', '/v1/keys/{keyId}/sign'),
        { message: '00' },
        key,
        { kind: 'proto', json: '{"isAdmin":true}' },
      ],
      [opOf('post', '/v1/keys/{keyId}/sign'), { message: '00' }, key, { kind: 'constructor' }],
      [
        opOf('post', '/v1/keys'),
        { keySpec: 'FROST_ED25519', threshold: 2 },
        {},
        { kind: 'wrong-type', prop: 'threshold', json: '1e400' },
      ],
      [
        opOf('post', '/v1/keys'),
        { keySpec: 'FROST_ED25519', threshold: 2 },
        {},
        { kind: 'wrong-type', prop: 'participants', json: deep(10_000) },
      ],
      [opOf('post', '/v1/keys/{keyId}/sign'), { message: '00' }, key, { kind: 'too-large' }],
    ];
    for (const [op, base, pv, mu] of cases) await checkBroken(op, build(op, base, pv, mu, 'admin'), before);
    // Garbage that is not HTTP at all: a problem document too, and nothing on record.
    const g = await rawExchange(['\x00\x01GARBAGE\r\n\r\n']);
    expect(g.status).toBe(400);
    expectProblem(g, 'garbage');
    expect(await newAuditRecords()).toEqual([]);
  }, 30_000);

  it('slow senders are cut off by the request timeout, answered with a problem, and not acted on', async () => {
    const before = await snapshot();
    await newAuditRecords(); // start from here, whatever an earlier test left
    const body = Buffer.from('{}');
    // Signed by the admin principal (a disable takes no bearer token), so only the timeout stops it.
    const sig = signedHeaders({ method: 'POST', url: `${cc.url}/v1/keys/${keyId}/disable`, body }, cc.admin);
    const signed = Object.entries(sig)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    const head = `POST /v1/keys/${keyId}/disable HTTP/1.1\r\nhost: x\r\n${signed}content-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`;
    // Headers one byte at a time, then a body one byte at a time: each far slower than the timeout allows.
    const slowHeaders = rawExchange(
      [...head].map((c) => c),
      { gapMs: 100, limitMs: 8_000 },
    );
    const slowBody = rawExchange([head, ...[...body.toString()], ' '.repeat(1)], {
      gapMs: 2_500,
      limitMs: 8_000,
    });
    const [h, b] = await Promise.all([slowHeaders, slowBody]);
    for (const [a, what] of [
      [h, 'slow headers'],
      [b, 'slow body'],
    ] as const) {
      expect(a.closedAfterMs, what).toBeLessThan(REQUEST_TIMEOUT_MS + 3_000);
      expect(a.status, what).toBe(408);
      expectProblem(a, what);
    }
    expect(await snapshot()).toBe(before);
    const recs = await newAuditRecords();
    // The slow headers never reached a route; the slow body did (its headers were complete) and is
    // on record as refused. Neither disabled the key (the snapshot above).
    const onRoute = recs.filter((x) => x.entry.route === '/v1/keys/:keyId/disable');
    expect(onRoute.length).toBeLessThanOrEqual(1);
    for (const x of onRoute) expect(x.entry.status).toBeGreaterThanOrEqual(400);
  }, 30_000);
});
