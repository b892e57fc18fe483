/** The upstream OAuth client: discovery, registration, authorization, tokens, revocation. */
export { parseBearerChallenge, type BearerChallenge } from './challenge.js'
export {
  OAuthClient,
  type BeginInput,
  type BeginResult,
  type FinishInput,
  type OAuthClientOptions,
  type ProviderSettings,
} from './client.js'
export { OAuthError } from './errors.js'
export { PROVIDER_PRESETS, type ProviderPreset } from './presets.js'
export {
  clientMetadataDocument,
  type RegisteredClient,
  type RegistrationCache,
  type TokenEndpointAuthMethod,
} from './registration.js'
export type { TokenSet } from './tokens.js'
