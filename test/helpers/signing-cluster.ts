/**
 * A Cluster that signs what it asks for, as a client would (issue 12): each operation that uses or
 * changes a key carries the signed API request the nodes expect for it (policy/request-signature.ts
 * profile, the binding table of the contract: create, sign, refresh, reshare, repair, state
 * changes), signed by `signer` on the nodes' clock, with an approval by `approver` attached (so the
 * admin-quorum guard of committee and threshold changes is met, as a second admin would). For the
 * tests that drive node daemons directly, without the HTTP API: the nodes still verify everything.
 */
import { type PrincipalSigner, signedInit } from '../../client/sign-request.ts';
import type { Cluster } from '../../coordinator/cluster.ts';
import { type AuthorizationWire, requestDigest, type SignedRequestWire } from '../../net/signed-request.ts';
import { type Governance, type Principal, principalKey } from '../../policy/governance.ts';
import { OPERATIONS } from '../../policy/policy-rule.ts';
import type { SessionSpec } from '../../net/rpc.ts';
import { type StateChange, stateChangeTo } from '../../protocol/key-states.ts';

const STATE_PATHS: Record<StateChange, string> = {
  disable: 'disable',
  enable: 'enable',
  scheduleDeletion: 'schedule-deletion',
  cancelDeletion: 'cancel-deletion',
};

/** The signed request `method path` with `body`, as the coordinator forwards it. */
export function signedWire(
  method: string,
  path: string,
  body: unknown,
  s: PrincipalSigner,
  nowS: number,
): SignedRequestWire {
  const u = new URL(`http://cluster.test${path}`);
  const init = signedInit(method, u, s, { nowS, ...(body === undefined ? {} : { body }) });
  return {
    method: method.toUpperCase() as SignedRequestWire['method'],
    path: u.pathname,
    query: u.search,
    headers: {
      'content-digest': init.headers['content-digest']!,
      'signature-input': init.headers['signature-input']!,
      signature: init.headers.signature!,
    },
    body: Buffer.from(init.body ?? '').toString('base64'),
  };
}

/** A genesis in which the given admins (quorum 1) may perform every operation on every key. */
export function allowAllGenesis(admins: readonly PrincipalSigner[]): Governance {
  const principals: Principal[] = admins.map((a) => ({
    id: a.id,
    alg: a.alg,
    publicKey: Buffer.from(a.publicKey).toString('base64url'),
  }));
  for (const p of principals) principalKey(p);
  return {
    version: 1,
    previous: null,
    principals,
    groups: { admins: admins.map((a) => a.id) },
    admins: { group: 'admins', quorum: 1 },
    policies: [
      { id: 'admins-all', effect: 'allow', operations: [...OPERATIONS], keys: ['*'], groups: ['admins'] },
    ],
  };
}

/** Signs `method path body` as `signer`, with `approver`'s approval of it attached. */
export function authorizer(
  signer: PrincipalSigner,
  approver: PrincipalSigner,
  nowMs: () => number = Date.now,
): (method: string, path: string, body?: unknown) => AuthorizationWire {
  return (method, path, body) => {
    const nowS = Math.floor(nowMs() / 1000);
    const request = signedWire(method, path, body, signer, nowS);
    const approval = signedWire(
      'POST',
      '/v1/requests/test-cluster/approvals',
      { requestDigest: requestDigest(request) },
      approver,
      nowS,
    );
    return { request, approvals: [approval] };
  };
}

/** The signed API request a key-creating session answers to (the contract's binding table). */
export function sessionRequest(s: SessionSpec): { method: 'POST'; path: string; body?: unknown } {
  switch (s.kind) {
    case 'dkg':
      return {
        method: 'POST',
        path: '/v1/keys',
        body: { keySpec: s.keySpec, threshold: s.threshold, participants: [...s.participants] },
      };
    case 'refresh':
      return { method: 'POST', path: `/v1/keys/${s.keyId}/refresh` };
    case 'reshare':
      return {
        method: 'POST',
        path: `/v1/keys/${s.keyId}/reshare`,
        body: { threshold: s.threshold, participants: [...s.participants] },
      };
    case 'repair':
      return { method: 'POST', path: `/v1/keys/${s.keyId}/repair`, body: { participant: s.target } };
  }
}

/** Wraps `inner` (a Proxy: every other member is the inner cluster's own). */
export function signingCluster<C extends Cluster>(
  inner: C,
  signer: PrincipalSigner,
  approver: PrincipalSigner,
  nowMs: () => number,
): C {
  const auth = authorizer(signer, approver, nowMs);
  const signed: Partial<Cluster> = {
    createKey: (r) =>
      inner.createKey({
        auth: auth('POST', '/v1/keys', {
          keySpec: r.keySpec,
          // Issue 15: an encryption key's signed body says so (each node checks it against the spec).
          ...(r.keySpec === 'TDH2_RISTRETTO255' ? { keyUsage: 'ENCRYPT_DECRYPT' } : {}),
          threshold: r.threshold,
          participants: [...r.participants],
        }),
        ...r,
      }),
    // Issue 15: the Decrypt (or ReEncrypt) request naming exactly this blob, context and recipient.
    decrypt: (r) =>
      inner.decrypt!({
        auth: auth(
          'POST',
          r.operation === 'Decrypt' ? '/v1/decrypt' : '/v1/re-encrypt',
          r.operation === 'Decrypt'
            ? {
                ciphertextBlob: Buffer.from(r.ciphertextBlob).toString('base64'),
                encryptionContext: { ...r.encryptionContext },
                ...(r.recipient
                  ? { recipient: { publicKey: Buffer.from(r.recipient).toString('base64') } }
                  : {}),
                ...(r.exclude ? { excludeNodes: [...r.exclude] } : {}),
              }
            : {
                ciphertextBlob: Buffer.from(r.ciphertextBlob).toString('base64'),
                sourceEncryptionContext: { ...r.encryptionContext },
                destinationKeyId: r.key.keyId,
              },
        ),
        ...r,
      }),
    sign: (r) =>
      inner.sign({
        auth: auth('POST', `/v1/keys/${r.key.keyId}/sign`, {
          message: Buffer.from(r.message).toString('hex'),
        }),
        ...r,
      }),
    refresh: (r) => inner.refresh({ auth: auth('POST', `/v1/keys/${r.key.keyId}/refresh`), ...r }),
    reshare: (r) =>
      inner.reshare({
        auth: auth('POST', `/v1/keys/${r.key.keyId}/reshare`, {
          threshold: r.threshold,
          participants: [...r.participants],
        }),
        ...r,
      }),
    repair: (r) =>
      inner.repair({
        auth: auth('POST', `/v1/keys/${r.key.keyId}/repair`, { participant: r.participant }),
        ...r,
      }),
    setKeyState: (r) =>
      inner.setKeyState({
        auth: auth('POST', `/v1/keys/${r.keyId}/${STATE_PATHS[r.operation ?? stateChangeTo(r.state)]}`),
        ...r,
      }),
  };
  return new Proxy(inner, {
    get(target, prop) {
      if (typeof prop === 'string' && prop in signed) return signed[prop as keyof Cluster];
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
