/**
 * Signed API requests at the coordinator (issue "Nodes decide"). The coordinator is a courier: it
 * captures each signed request exactly as received (method, path, query, the body's bytes and the
 * three signature headers) and forwards that to the nodes, which verify it themselves. It also
 * verifies the signature here, against the governance the nodes hold, only to give the client a
 * useful error before any node is asked; passing this check grants nothing. Its clock is the app's
 * (coordinator/lifecycle.ts Clock: the wall clock, moved by tests together with the nodes').
 */
import type { FastifyRequest } from 'fastify';
import { KmsError } from '../protocol/errors.ts';
import { parseDictionary } from 'structured-headers';
import { SIGNATURE_LABEL, verifyRequest } from '../policy/request-signature.ts';
import { fromWire, type SignedRequestWire } from '../net/signed-request.ts';
import type { GovernanceView } from './governance.ts';

export const SIGNATURE_HEADERS = ['signature-input', 'signature', 'content-digest'] as const;

/** Which of the three headers a request lacks (none: it claims to be signed). */
export function missingSignatureHeaders(headers: FastifyRequest['headers']): string[] {
  return SIGNATURE_HEADERS.filter((h) => headers[h] === undefined);
}

/** The request as the client signed it: what the nodes get. Throws Unauthorized if malformed. */
export function wireOf(
  req: Pick<FastifyRequest, 'method' | 'url' | 'headers' | 'rawBody'>,
): SignedRequestWire {
  const at = req.url.indexOf('?');
  const path = at < 0 ? req.url : req.url.slice(0, at);
  // RFC 9421 §2.2.7: an absent and an empty query are both no query (URL.search is '' for both).
  const query = at < 0 || at === req.url.length - 1 ? '' : req.url.slice(at);
  const header = (name: (typeof SIGNATURE_HEADERS)[number]): string => {
    const v = req.headers[name];
    if (typeof v !== 'string' || v.length === 0 || v.length > 4096) {
      throw new KmsError(
        'Unauthorized',
        `request signature: one ${name} header (at most 4096 bytes) is required`,
      );
    }
    return v;
  };
  if (!/^\/[\x21-\x7e]{0,1023}$/.test(path) || !/^(\?[\x21-\x7e]{0,1023})?$/.test(query)) {
    throw new KmsError(
      'ValidationError',
      'a signed request has a path and query of at most 1024 printable characters',
    );
  }
  return {
    method: req.method.toUpperCase() as SignedRequestWire['method'],
    path,
    query,
    headers: {
      'content-digest': header('content-digest'),
      'signature-input': header('signature-input'),
      signature: header('signature'),
    },
    body: (req.rawBody ?? Buffer.alloc(0)).toString('base64'),
  };
}

/**
 * The principal of a signed request, checked as a node checks it (signature, digest, time window
 * on this machine's clock), against the governance the nodes hold. Replays are the nodes' check.
 * Throws Unauthorized naming what is wrong.
 */
export async function verifySigned(
  governance: GovernanceView,
  wire: SignedRequestWire,
  nowMs: number,
): Promise<string> {
  const req = fromWire(wire);
  // The principal's key may need a read from the nodes: look it up before the synchronous check.
  const keyid = signatureParam(wire, 'keyid');
  const key = keyid === undefined ? undefined : await governance.principal(keyid);
  const nowS = Math.floor(nowMs / 1000);
  return verifyRequest(req, (id) => (id === keyid ? key : undefined), nowS).principal;
}

/** A parameter of the request's `sig1` Signature-Input (keyid, expires, ...), if well-formed. */
export function signatureParam(wire: SignedRequestWire, name: 'keyid'): string | undefined;
export function signatureParam(wire: SignedRequestWire, name: 'expires' | 'created'): number | undefined;
export function signatureParam(wire: SignedRequestWire, name: string): string | number | undefined {
  try {
    const member = parseDictionary(wire.headers['signature-input']).get(SIGNATURE_LABEL);
    const v = member?.[1].get(name);
    return typeof v === 'string' || typeof v === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}
