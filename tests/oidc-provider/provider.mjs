// An OpenID Connect provider for Hearth's federation tests: the npm package
// oidc-provider with its development login and consent pages, served over
// HTTPS on 127.0.0.1 with a certificate the test generates.
//
// Usage: node provider.mjs CERT_PEM KEY_PEM SIGNING_KEY_PEM CLAIMS_JSON
//
// SIGNING_KEY_PEM is a P-256 private key in PKCS #8 PEM; ID tokens are signed
// with it as ES256.
//
// 1. Listens on a random port and prints {"port": N} on one line.
// 2. Reads one JSON line from standard input: {"client_id", "client_secret",
//    "redirect_uris"}. The test sends it once it knows Hearth's callback URL.
// 3. Prints "ready" and serves until standard input closes.
//
// The login page accepts any login name with any password, and the name is the
// subject. CLAIMS_JSON maps a subject to its claims and is read on every
// request, so a test can change a user's claims between sign-ins. A subject
// without an entry gets preferred_username equal to the subject.
//
// Subjects that start with "tamper-" make the token endpoint return an ID
// token that is validly signed but wrong in one way, for testing the relying
// party's checks: tamper-iss- (another issuer), tamper-aud- (another
// audience), tamper-exp- (expired), tamper-nonce- (another nonce) and
// tamper-sig- (a signature that does not match the payload).

import { createServer } from 'node:https';
import { createPrivateKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

import Provider from 'oidc-provider';

const [certFile, keyFile, signingKeyFile, claimsFile] = process.argv.slice(2);
if (!certFile || !keyFile || !signingKeyFile || !claimsFile) {
  console.error('usage: node provider.mjs CERT_PEM KEY_PEM SIGNING_KEY_PEM CLAIMS_JSON');
  process.exit(2);
}

// The key comes from the test, so startup generates no key: RSA key
// generation in Node 20 sometimes took over 30 s when many providers started
// at once.
const signingKey = createPrivateKey(readFileSync(signingKeyFile));
const jwk = { ...signingKey.export({ format: 'jwk' }), kid: 'test-key', alg: 'ES256', use: 'sig' };

let handler = (req, res) => {
  res.statusCode = 503;
  res.end('not configured yet');
};
const server = createServer(
  { cert: readFileSync(certFile), key: readFileSync(keyFile) },
  (req, res) => handler(req, res),
);
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
console.log(JSON.stringify({ port }));

const lines = createInterface({ input: process.stdin });
const iterator = lines[Symbol.asyncIterator]();
const first = await iterator.next();
if (first.done) process.exit(0);
const client = JSON.parse(first.value);

function claimsFor(sub) {
  const all = JSON.parse(readFileSync(claimsFile, 'utf8'));
  return { ...(all[sub] ?? { preferred_username: sub }), sub };
}

const provider = new Provider(`https://127.0.0.1:${port}`, {
  clients: [{
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: client.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: ['hearth-test-cookie-key'] },
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  async findAccount(ctx, sub) {
    return { accountId: sub, claims: async () => claimsFor(sub) };
  },
});

process.stdout.on('error', () => {});

const base64url = (value) => Buffer.from(value).toString('base64url');

function es256(signingInput) {
  return sign('sha256', Buffer.from(signingInput), { key: signingKey, dsaEncoding: 'ieee-p1363' })
    .toString('base64url');
}

function tamper(idToken) {
  const [headerPart, payloadPart] = idToken.split('.');
  const payload = JSON.parse(Buffer.from(payloadPart, 'base64url'));
  const sub = String(payload.sub);
  if (sub.startsWith('tamper-iss-')) payload.iss = 'https://127.0.0.1:9/another-issuer';
  else if (sub.startsWith('tamper-aud-')) payload.aud = 'another-client';
  else if (sub.startsWith('tamper-exp-')) {
    payload.iat -= 7200;
    payload.exp = payload.iat + 600;
  } else if (sub.startsWith('tamper-nonce-')) payload.nonce = 'another-nonce';
  else if (!sub.startsWith('tamper-sig-')) return idToken;
  const signingInput = `${headerPart}.${base64url(JSON.stringify(payload))}`;
  let signature = es256(signingInput);
  if (sub.startsWith('tamper-sig-')) {
    // A valid signature of other content.
    signature = es256(`${signingInput}.`);
  }
  return `${signingInput}.${signature}`;
}

provider.use(async (ctx, next) => {
  await next();
  if (ctx.method === 'POST' && ctx.path === '/token' && ctx.body?.id_token) {
    ctx.body = { ...ctx.body, id_token: tamper(ctx.body.id_token) };
  }
});

handler = provider.callback();
console.log('ready');

// The test closes standard input when it is done.
for await (const line of { [Symbol.asyncIterator]: () => iterator }) void line;
server.close();
process.exit(0);
