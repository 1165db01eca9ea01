import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import {
  type CryptoKey,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from "jose";

export const DEV_AUDIENCE = "access-broker";
const ALGORITHM = "ES256";
const TOKEN_LIFETIME = "12h";

export interface DevIssuer {
  issuer: string;
  mint(claims: { email: string; groups: string[]; name?: string }): Promise<string>;
  /** The same check API Gateway's JWT authorizer makes: signature, issuer, audience, expiry. */
  verify(token: string): Promise<JWTPayload>;
  jwks(): { keys: JWK[] };
}

/**
 * A local OIDC-style issuer: real ES256-signed JWTs. The key pair is kept in `keyFile` so tokens
 * outlive a restart of the local runtime.
 */
export async function createDevIssuer(issuer: string, keyFile?: string): Promise<DevIssuer> {
  let privateJwk: JWK;
  if (keyFile && existsSync(keyFile)) {
    privateJwk = JSON.parse(readFileSync(keyFile, "utf8")) as JWK;
  } else {
    const pair = await generateKeyPair(ALGORITHM, { extractable: true });
    privateJwk = {
      ...(await exportJWK(pair.privateKey)),
      kid: `dev-${Date.now().toString(36)}`,
      alg: ALGORITHM,
    };
    if (keyFile) {
      mkdirSync(dirname(keyFile), { recursive: true });
      writeFileSync(keyFile, JSON.stringify(privateJwk), { mode: 0o600 });
    }
  }
  const { d: _private, ...publicJwk } = privateJwk;
  const privateKey = (await importJWK(privateJwk, ALGORITHM)) as CryptoKey;
  const publicKey = (await importJWK(publicJwk, ALGORITHM)) as CryptoKey;
  return {
    issuer,
    async mint({ email, groups, name }) {
      return new SignJWT({ email, groups, ...(name ? { name } : {}) })
        .setProtectedHeader({ alg: ALGORITHM, kid: privateJwk.kid })
        .setIssuer(issuer)
        .setAudience(DEV_AUDIENCE)
        .setSubject(email)
        .setIssuedAt()
        .setExpirationTime(TOKEN_LIFETIME)
        .sign(privateKey);
    },
    async verify(token) {
      const { payload } = await jwtVerify(token, publicKey, {
        issuer,
        audience: DEV_AUDIENCE,
        algorithms: [ALGORITHM],
      });
      return payload;
    },
    jwks: () => ({ keys: [publicJwk] }),
  };
}
