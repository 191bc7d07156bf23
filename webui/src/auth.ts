// Who is signed in: an API key, or an OIDC login (authorization code + PKCE). Kept in sessionStorage: it survives a
// reload of this tab, never leaves it, and is gone when the tab closes.
import { appBase } from "./api";

export interface UiConfig {
  authority: string | null;
  clientId: string | null;
  scope: string;
}

export interface Credential {
  kind: "apikey" | "oidc";
  token: string;
  /** What to show as "signed in as". */
  label: string;
  /** UNIX seconds; for OIDC tokens. */
  expiresAt?: number;
  refreshToken?: string;
  idToken?: string;
}

const CREDENTIAL_KEY = "lisa.credential";
const PENDING_KEY = "lisa.oidc.pending";

export function loadCredential(): Credential | null {
  const raw = sessionStorage.getItem(CREDENTIAL_KEY);
  if (!raw) return null;
  try {
    const parsed = JSON.parse(raw) as Credential;
    return typeof parsed.token === "string" && parsed.token ? parsed : null;
  } catch {
    return null;
  }
}

export function saveCredential(credential: Credential): void {
  sessionStorage.setItem(CREDENTIAL_KEY, JSON.stringify(credential));
}

export function clearCredential(): void {
  sessionStorage.removeItem(CREDENTIAL_KEY);
}

export function apiKeyCredential(key: string): Credential {
  const trimmed = key.trim();
  return { kind: "apikey", token: trimmed, label: `API key …${trimmed.slice(-4)}` };
}

// ---- OIDC ------------------------------------------------------------------------------------------------------

interface Discovery {
  authorization_endpoint: string;
  token_endpoint: string;
  end_session_endpoint?: string;
}

interface TokenResponse {
  id_token?: string;
  access_token?: string;
  refresh_token?: string;
  expires_in?: number;
  error?: string;
  error_description?: string;
}

interface Pending {
  state: string;
  verifier: string;
  redirectUri: string;
}

const discoveries = new Map<string, Promise<Discovery>>();

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(bytes = 32): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

async function challengeFor(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

function redirectUri(): string {
  return `${window.location.origin}${appBase()}/`;
}

async function discover(authority: string): Promise<Discovery> {
  let pending = discoveries.get(authority);
  if (!pending) {
    pending = (async () => {
      let response: Response;
      try {
        response = await fetch(`${authority.replace(/\/$/, "")}/.well-known/openid-configuration`);
      } catch {
        throw new Error(`Cannot reach the identity provider at ${authority}`);
      }
      if (!response.ok) throw new Error(`The identity provider's configuration is unavailable (HTTP ${response.status})`);
      return (await response.json()) as Discovery;
    })();
    discoveries.set(authority, pending);
    pending.catch(() => discoveries.delete(authority));
  }
  return pending;
}

/** Claims of a JWT, for display and expiry only (the server verifies signatures). */
export function jwtClaims(token: string): Record<string, unknown> {
  try {
    const payload = token.split(".")[1] ?? "";
    const binary = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  } catch {
    return {};
  }
}

function credentialFromTokens(tokens: TokenResponse, previous?: Credential): Credential {
  const token = tokens.id_token ?? previous?.idToken;
  if (!token) throw new Error("The identity provider returned no id_token");
  const claims = jwtClaims(token);
  const name = ["preferred_username", "username", "cognito:username", "email", "sub"]
    .map((key) => claims[key])
    .find((value): value is string => typeof value === "string" && value.length > 0);
  const exp = typeof claims.exp === "number" ? claims.exp : undefined;
  return {
    kind: "oidc",
    token,
    idToken: token,
    label: name ?? "signed in",
    expiresAt: exp ?? (tokens.expires_in ? Math.floor(Date.now() / 1000) + tokens.expires_in : undefined),
    refreshToken: tokens.refresh_token ?? previous?.refreshToken,
  };
}

async function tokenRequest(config: UiConfig, form: Record<string, string>): Promise<TokenResponse> {
  const discovery = await discover(config.authority!);
  let response: Response;
  try {
    response = await fetch(discovery.token_endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: config.clientId ?? "", ...form }),
    });
  } catch {
    throw new Error("Cannot reach the identity provider to finish signing in");
  }
  const body = (await response.json().catch(() => ({}))) as TokenResponse;
  if (!response.ok || body.error) {
    throw new Error(`Sign-in failed: ${body.error_description ?? body.error ?? `HTTP ${response.status}`}`);
  }
  return body;
}

/** Start the authorization-code flow with PKCE: the browser leaves for the identity provider. */
export async function beginOidcLogin(config: UiConfig): Promise<void> {
  if (!config.authority || !config.clientId) throw new Error("Single sign-on is not configured");
  const discovery = await discover(config.authority);
  const pending: Pending = { state: randomString(16), verifier: randomString(48), redirectUri: redirectUri() };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(discovery.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: config.clientId,
    redirect_uri: pending.redirectUri,
    scope: config.scope,
    state: pending.state,
    code_challenge: await challengeFor(pending.verifier),
    code_challenge_method: "S256",
  }).toString();
  window.location.assign(url.toString());
}

/** If this page is the redirect back from the identity provider, exchange the code; else null. */
export async function completeOidcLogin(config: UiConfig): Promise<Credential | null> {
  const params = new URLSearchParams(window.location.search);
  if (!params.has("code") && !params.has("error")) return null;
  const raw = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  window.history.replaceState(null, "", window.location.pathname);
  if (params.has("error")) {
    throw new Error(`Sign-in was refused: ${params.get("error_description") ?? params.get("error")}`);
  }
  const pending = raw ? (JSON.parse(raw) as Pending) : null;
  if (!pending || pending.state !== params.get("state")) {
    throw new Error("Sign-in could not be verified (state mismatch); please sign in again");
  }
  const tokens = await tokenRequest(config, {
    grant_type: "authorization_code",
    code: params.get("code") ?? "",
    redirect_uri: pending.redirectUri,
    code_verifier: pending.verifier,
  });
  return credentialFromTokens(tokens);
}

/** A fresh credential from the refresh token, or null when there is none or the provider refuses. */
export async function refreshOidc(config: UiConfig, credential: Credential): Promise<Credential | null> {
  if (credential.kind !== "oidc" || !credential.refreshToken || !config.authority) return null;
  try {
    const tokens = await tokenRequest(config, { grant_type: "refresh_token", refresh_token: credential.refreshToken });
    return credentialFromTokens(tokens, credential);
  } catch {
    return null;
  }
}

/** Where to send the browser to end the provider's session too (null if it has no end_session_endpoint). */
export async function oidcLogoutUrl(config: UiConfig, credential: Credential): Promise<string | null> {
  if (credential.kind !== "oidc" || !config.authority) return null;
  try {
    const discovery = await discover(config.authority);
    if (!discovery.end_session_endpoint) return null;
    const url = new URL(discovery.end_session_endpoint);
    url.search = new URLSearchParams({
      client_id: config.clientId ?? "",
      id_token_hint: credential.idToken ?? "",
      post_logout_redirect_uri: redirectUri(),
    }).toString();
    return url.toString();
  } catch {
    return null;
  }
}
