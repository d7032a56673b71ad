/**
 * Who lied when an echo disagrees with what we received (reliable-broadcast check of DKG,
 * refresh/reshare and repair). Every broadcast is signed by its sender's node identity key
 * (protocol/codec.ts `signedMessage`), and an echo forwards, per original sender, the digest it
 * received AND that sender's signature of it. So on a mismatch about sender S reported by R:
 * - R misreports its own message: R signed both the message and the echo -> R;
 * - the forwarded signature of S verifies: S signed two different messages for one header -> S
 *   equivocated (evidence: both signed digests);
 * - it does not verify: R made the claim up -> R.
 * Evidence is transferable (headers, digests, signatures, the echo's own bytes and signature: a
 * third party with the cluster file's peer ids can check it) and never holds a message body other
 * than the echo's, which is public.
 *
 * Without a signature check (in-memory runs of the machines) nothing can be proven about a third
 * party: the sender is blamed, except for our own message, where we know the reporter is wrong.
 */
import { toHex } from './bytes.ts';
import { evidenceString, type SignedStatement, statementVerifies } from './codec.ts';
import { type Blame, misbehaved, ProtocolError } from './errors.ts';
import type { ParticipantId } from './ids.ts';
import type { EnvelopeHeader, SignatureCheck } from './machine.ts';

/** Our copy of S's broadcast (no signature when S is ourselves: the shell signs what we send). */
export type ReceivedCopy = {
  readonly header: EnvelopeHeader;
  readonly digest: Uint8Array;
  readonly signature?: Uint8Array;
};

/** The echo (or other report) R sent: its own signed statement and bytes, for evidence. */
export type EchoCopy = {
  readonly header: EnvelopeHeader;
  readonly digest: Uint8Array;
  readonly signature?: Uint8Array;
  /**
   * The encoded echo envelope, when its body is public (an echo: digests and signatures only). A
   * report that also carries a secret (repair's sigma) leaves it out: its header, digest and
   * signature still show that the reporter sent it.
   */
  readonly bytes?: Uint8Array;
};

export type EchoMismatch = {
  readonly self: ParticipantId;
  readonly reporter: ParticipantId;
  readonly sender: ParticipantId;
  /** What we received from `sender` (or sent, when sender is self). */
  readonly ours: ReceivedCopy;
  /** What `reporter` says it received from `sender`: digest and sender's signature. */
  readonly theirs: { readonly digest: Uint8Array; readonly signature?: Uint8Array };
  readonly echo: EchoCopy;
  /** Round named in the blame (the echoed broadcast's, e.g. `dkg.r1`). */
  readonly round: string;
  readonly verify?: SignatureCheck;
  /**
   * Unsigned only: whether a mismatch about our own message blames the reporter (DKG: we know what
   * we sent) or, as the dealing engine always did, the sender regardless.
   */
  readonly unsignedOwnBlamesReporter?: boolean;
};

const stmt = (c: ReceivedCopy | EchoCopy): Partial<SignedStatement> => ({
  header: c.header,
  digest: c.digest,
  ...(c.signature ? { signature: c.signature } : {}),
});

/** The ProtocolError for one echo mismatch (callers only call it when the digests differ). */
export function echoMismatch(m: EchoMismatch): ProtocolError {
  const { self, reporter, sender, ours, theirs, echo, round, verify } = m;
  const one = (b: Blame, why: string) => misbehaved(why, [b]);
  if (!verify) {
    // Unsigned: we know what we sent ourselves; about anyone else we cannot tell who lies.
    const culprit = sender === self && m.unsignedOwnBlamesReporter ? reporter : sender;
    return one(
      {
        participant: culprit,
        reason: 'equivocation',
        round,
        evidence: `${toHex(ours.digest)} != ${toHex(theirs.digest)} (reported by ${reporter})`,
      },
      `${round}: participants received different messages from ${sender}`,
    );
  }
  const echoEvidence = echo.bytes ? { ...stmt(echo), bytes: echo.bytes } : stmt(echo);
  if (sender === reporter) {
    return one(
      {
        participant: reporter,
        reason: 'equivocation',
        round,
        evidence: evidenceString({
          kind: 'echo-contradicts-own-message',
          signer: reporter,
          message: stmt(ours),
          echo: echoEvidence,
        }),
      },
      `${reporter}'s echo misreports its own ${round} message`,
    );
  }
  const claimed: SignedStatement | undefined = theirs.signature
    ? { header: ours.header, digest: theirs.digest, signature: theirs.signature }
    : undefined;
  const signedBySender =
    claimed !== undefined && statementVerifies(claimed, (msg, sig) => verify(sender, msg, sig));
  if (!signedBySender) {
    return one(
      {
        participant: reporter,
        reason: 'equivocation',
        round,
        evidence: evidenceString({
          kind: 'forged-echo',
          echoer: reporter,
          sender,
          claimed: { header: ours.header, digest: theirs.digest, signature: theirs.signature ?? null },
          echo: echoEvidence,
        }),
      },
      `${reporter}'s echo claims a ${round} message of ${sender} that ${sender} did not sign`,
    );
  }
  if (sender === self || !ours.signature) {
    // Our own key signed a message we never sent: nobody here can be blamed with proof.
    return new ProtocolError('ProtocolAborted', `${round}: a signature of ${sender} over an unknown message`);
  }
  return one(
    {
      participant: sender,
      reason: 'equivocation',
      round,
      evidence: evidenceString({
        kind: 'two-signed-messages',
        signer: sender,
        a: stmt(ours),
        b: claimed!,
      }),
    },
    `${sender} signed two different ${round} messages (reported by ${reporter})`,
  );
}

/**
 * Two different messages from one sender for one header arrived here directly: equivocation,
 * evidenced by the two digests, and the two signatures when the shell passed them. Never the
 * bodies: a point-to-point body holds a secret share (security review I-1).
 */
export function duplicateConflict(
  header: EnvelopeHeader,
  a: { readonly digest: Uint8Array; readonly signature?: Uint8Array | undefined },
  b: { readonly digest: Uint8Array; readonly signature?: Uint8Array | undefined },
): ProtocolError {
  const signed = a.signature !== undefined && b.signature !== undefined;
  const evidence = signed
    ? evidenceString({
        kind: 'two-signed-messages',
        signer: header.from,
        a: { header, digest: a.digest, signature: a.signature },
        b: { header, digest: b.digest, signature: b.signature },
      })
    : `${toHex(a.digest)} != ${toHex(b.digest)}`;
  return misbehaved(`${header.round}: two different messages from one sender`, [
    { participant: header.from, reason: 'equivocation', round: header.round, evidence },
  ]);
}
