//! Verification of OIDC ID tokens (and JWT access tokens) against an issuer's key set.
//!
//! # Security
//! - Only asymmetric algorithms are ever accepted ([`Policy::new`] drops `none` and every HMAC
//!   algorithm from the allow-list), so a token signed with HMAC using the issuer's *public* key
//!   as the secret cannot pass. The key must also be of the algorithm's family, and when the JWK
//!   names an `alg`, it must equal the token's.
//! - `iss` is compared exactly. `aud` may be a string or a list; the token is accepted when at
//!   least one audience is an accepted client ID or configured audience (several audiences are
//!   normal for tokens shared with a kube-apiserver). When `azp` is present it must name an
//!   accepted client, which stops a token minted for some other client of the same IdP (that
//!   happens to list our audience) from being used here.
//! - `exp` is required; `exp`, `nbf` and `iat` are checked against the clock passed in, with a
//!   skew bounded by [`MAX_SKEW_SECS`].
//! - `exp`, `nbf` and `iat` must be whole numbers of seconds within ±2^53
//!   ([`MAX_NUMERIC_DATE`]), written as integers or as floats with no fraction (`1.8e9`);
//!   anything else is refused ([`VerifyError::BadNumericDate`]). 2^53 is where JSON readers
//!   stop agreeing: up to it every whole number is exactly an IEEE double, so gatehouse, Go's
//!   and JavaScript's readers all get the same instant; beyond it (and for fractions) readers
//!   round, truncate or saturate differently. A cast would turn `"exp": 1e300` into
//!   `i64::MAX`, a token that never expires. 2^53 seconds is 285 million years, so no real
//!   token is refused; RFC 7519 allows fractional NumericDates, but no IdP gatehouse knows
//!   issues them.
//! - `client_id` (the client of an RFC 9068 JWT access token, which has no `azp`) must, when
//!   present, name an accepted client too, exactly like `azp`: an access token minted for some
//!   other client of the same IdP does not get in by listing our audience.
//! - The `typ` header is checked, case-insensitively and with an optional `application/`
//!   prefix (RFC 7515 §4.1.9): absent or `JWT` is accepted; `at+jwt` (RFC 9068) only when the
//!   policy accepts access tokens ([`Policy::accepting_access_tokens`]). Every other type is
//!   refused ([`VerifyError::WrongType`]), so a logout token (`logout+jwt`), a DPoP proof
//!   (`dpop+jwt`), a security event token (`secevent+jwt`) or any other JWT the IdP signs with
//!   the same keys never authenticates.
//! - Key selection ([`select_key`]): only keys usable for verifying signatures are candidates
//!   (`use` absent or `sig`, `key_ops` absent or holding `verify`), and only keys whose type
//!   and curve fit the token's algorithm (RSA for `RS*`/`PS*`, EC P-256 for `ES256`, EC P-384
//!   for `ES384`, OKP Ed25519 for `EdDSA`) and whose `alg`, when named, equals it. A token
//!   without `kid` is checked only when exactly one key is a candidate.
//! - A `crit` header (RFC 7515 §4.1.11) is refused whatever it lists
//!   ([`VerifyError::CriticalHeader`]): gatehouse understands no JWS extension, and the RFC
//!   says a token naming one the recipient does not understand must be rejected.
//!   (jsonwebtoken lets `crit: ["b64"]` with `b64: true` through; gatehouse does not.)
//! - An `alg` jsonwebtoken does not know (`none` above all) is refused as an algorithm
//!   ([`VerifyError::UnknownAlgorithm`]), before any key is looked at.
//! - Header text the sender chose (`alg`, `typ`, `kid`) is repeated in a refusal only up to
//!   [`HEADER_TEXT_CHARS`] characters: refusals reach logs and the client, and a header may be
//!   16 KiB.
//! - Keys embedded in the header (`jwk`, `jku`, `x5u`, `x5c`) are never used: the key always
//!   comes from the issuer's key set, by `kid`.
//! - The clock is an argument, so expiry is tested without sleeping.
//! - An issuer of a kube-apiserver `AuthenticationConfiguration` is checked by the
//!   kube-apiserver's own rules instead ([`Policy::kubernetes`], go-oidc v2 as k8s.io/apiserver
//!   v0.34 uses it), so that gatehouse accepts exactly the tokens the cluster would: `azp` and
//!   `client_id` are not checked (the file has no client), `sub` may be absent (but must be a
//!   string when present), `exp` has no leeway, `nbf` one minute, and `iat` is not compared
//!   with the clock. Everything else above (algorithms, keys, `typ`, `crit`) stays: a token the
//!   kube-apiserver would accept that gatehouse refuses by these is documented in
//!   docs/authentication.md.

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

/// The largest clock skew a policy may allow, in seconds.
pub const MAX_SKEW_SECS: u64 = 60;

/// The largest magnitude of an `exp`, `nbf` or `iat` claim, in seconds: 2^53, the range in
/// which every whole number is exactly an IEEE double (see the module's Security section).
pub const MAX_NUMERIC_DATE: i64 = 1 << 53;

/// What a token must satisfy to be accepted from one issuer.
#[derive(Debug, Clone)]
pub struct Policy {
    issuer: String,
    audiences: Vec<String>,
    authorized_parties: Vec<String>,
    algorithms: Vec<Algorithm>,
    skew_secs: u64,
    access_tokens: bool,
    rules: ClaimRules,
}

/// Whose rules the registered claims are checked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClaimRules {
    /// gatehouse's: the module's Security section.
    Gatehouse,
    /// The kube-apiserver's JWT authenticator's ([`Policy::kubernetes`]).
    Kubernetes,
}

/// The algorithms the kube-apiserver accepts from an `AuthenticationConfiguration` issuer
/// (k8s.io/apiserver's `AllValidSigningAlgorithms`), less ES512, which jsonwebtoken does not
/// implement (an ES512 token is refused: docs/authentication.md).
pub const KUBERNETES_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// The leeway go-oidc v2 gives `nbf` (the kube-apiserver's JWT authenticators use it).
pub const KUBERNETES_NBF_LEEWAY_SECS: i64 = 60;

/// Algorithms that use a public key; the only ones a [`Policy`] keeps.
pub fn is_asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

impl Policy {
    /// Builds a policy. HMAC algorithms are removed from `algorithms` and the skew is capped at
    /// [`MAX_SKEW_SECS`].
    pub fn new(
        issuer: impl Into<String>,
        audiences: Vec<String>,
        authorized_parties: Vec<String>,
        algorithms: Vec<Algorithm>,
        skew_secs: u64,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            authorized_parties,
            algorithms: algorithms
                .into_iter()
                .filter(|a| is_asymmetric(*a))
                .collect(),
            skew_secs: skew_secs.min(MAX_SKEW_SECS),
            access_tokens: false,
            rules: ClaimRules::Gatehouse,
        }
    }

    /// The policy of one `jwt` issuer of a kube-apiserver `AuthenticationConfiguration`: its
    /// URL, its audiences (any one must be in `aud`), and the kube-apiserver's rules for the
    /// registered claims (see the module's Security section).
    pub fn kubernetes(
        issuer: impl Into<String>,
        audiences: Vec<String>,
        algorithms: Vec<Algorithm>,
    ) -> Self {
        Self {
            rules: ClaimRules::Kubernetes,
            ..Self::new(issuer, audiences, Vec::new(), algorithms, 0)
        }
    }

    /// Also accepts RFC 9068 JWT access tokens (`typ: at+jwt`), as configured with
    /// `oidc.tokenType: access_token`. Without it, only `typ` absent or `JWT` is accepted.
    #[must_use]
    pub fn accepting_access_tokens(mut self, yes: bool) -> Self {
        self.access_tokens = yes;
        self
    }

    /// The exact issuer string this policy accepts.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The algorithms this policy accepts.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }
}

/// Why a token was refused. Each variant is a distinct, testable reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The token is not a well-formed compact JWS.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The header names an algorithm outside the allow-list.
    #[error("signing algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(Algorithm),
    /// The header names an algorithm gatehouse does not know at all (`none` among them).
    #[error("signing algorithm {found:?} is not allowed")]
    UnknownAlgorithm {
        /// The `alg` header (at most 32 characters of it).
        found: String,
    },
    /// The header has a `crit` member (RFC 7515 §4.1.11): gatehouse understands no extension.
    #[error("the token's header names critical extensions (crit) gatehouse does not understand")]
    CriticalHeader,
    /// No key in the issuer's key set matches the token's `kid`.
    #[error("no key with id {kid:?} in the issuer's key set")]
    UnknownKey {
        /// The `kid` from the token header (at most 32 characters of it).
        kid: Option<String>,
    },
    /// The key cannot be used with the token's algorithm.
    #[error("the issuer's key does not fit algorithm {0:?}")]
    KeyMismatch(Algorithm),
    /// The only keys with the token's `kid` are not for signatures (`use: enc`, or `key_ops`
    /// without `verify`).
    #[error("the issuer's key {kid:?} is not a signature key (its use or key_ops say otherwise)")]
    KeyNotForSignatures {
        /// The `kid` from the token header (at most 32 characters of it).
        kid: Option<String>,
    },
    /// The `typ` header names a kind of JWT that does not authenticate.
    #[error(
        "the token's type (typ header {found:?}) is not accepted: ID tokens (typ absent or JWT) are, JWT access tokens (typ at+jwt) only with oidc.tokenType: access_token, and other types (logout tokens, DPoP proofs, security events) never sign in"
    )]
    WrongType {
        /// The `typ` header (at most 32 characters of it).
        found: String,
    },
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// `iss` differs from the configured issuer.
    #[error("issuer {found:?} is not the configured issuer")]
    WrongIssuer {
        /// The `iss` found in the token.
        found: String,
    },
    /// No audience is an accepted client ID or audience.
    #[error("audience {found:?} contains no accepted client ID or audience")]
    WrongAudience {
        /// The audiences found in the token.
        found: Vec<String>,
    },
    /// `azp` names a client that is not accepted.
    #[error("authorized party (azp) {found:?} is not an accepted client")]
    WrongAuthorizedParty {
        /// The `azp` found in the token.
        found: String,
    },
    /// `client_id` (RFC 9068 access tokens) names a client that is not accepted.
    #[error("client (client_id) {found:?} is not an accepted client")]
    WrongClient {
        /// The `client_id` found in the token.
        found: String,
    },
    /// The token has expired.
    #[error("the token expired at {exp} (unix time)")]
    Expired {
        /// The `exp` claim.
        exp: i64,
    },
    /// The token is not valid yet.
    #[error("the token is not valid before {nbf} (unix time)")]
    NotYetValid {
        /// The `nbf` claim.
        nbf: i64,
    },
    /// The token was issued in the future (clock skew beyond the allowed bound).
    #[error("the token was issued in the future ({iat}, unix time)")]
    IssuedInFuture {
        /// The `iat` claim.
        iat: i64,
    },
    /// A required claim is missing or has the wrong type.
    #[error("claim {0:?} is missing or has the wrong type")]
    MissingClaim(&'static str),
    /// `exp`, `nbf` or `iat` is a number, but not a whole number of seconds within ±2^53
    /// ([`MAX_NUMERIC_DATE`]): a fraction, or a value too large to be read exactly.
    #[error(
        "claim {0:?} is not a whole number of seconds within ±2^53 (an RFC 7519 NumericDate gatehouse can read exactly)"
    )]
    BadNumericDate(&'static str),
}

/// A token whose signature and claims have been verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `aud`, always as a list.
    pub audiences: Vec<String>,
    /// `azp`, when present.
    pub authorized_party: Option<String>,
    /// `exp`, unix seconds.
    pub expires_at: i64,
    /// All claims of the payload.
    pub claims: Map<String, Value>,
}

/// Verifies `token` against `keys` and `policy` at time `now` (unix seconds).
pub fn verify(
    token: &str,
    keys: &JwkSet,
    policy: &Policy,
    now: i64,
) -> Result<Verified, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| unknown_algorithm(token))?;
    if header.crit.is_some() {
        return Err(VerifyError::CriticalHeader);
    }
    if !policy.algorithms.contains(&header.alg) {
        return Err(VerifyError::AlgorithmNotAllowed(header.alg));
    }
    check_type(header.typ.as_deref(), policy.access_tokens)?;
    let jwk = select_key(keys, header.kid.as_deref(), header.alg)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| VerifyError::KeyMismatch(header.alg))?;
    // RFC 7797's `b64`: only `true` or absent (jsonwebtoken's own rule; `crit` is refused above).
    if !matches!(header.extras.get::<bool>("b64"), Ok(None | Some(true))) {
        return Err(VerifyError::Malformed);
    }
    // The header was read above; the signature over the first two parts is checked, and only
    // then is the payload read, once (`jsonwebtoken::decode` would read the header again and
    // the payload twice).
    let (message, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
    let (_, payload) = message.rsplit_once('.').ok_or(VerifyError::Malformed)?;
    let verified = jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, header.alg)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
            | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => {
                VerifyError::KeyMismatch(header.alg)
            }
            _ => VerifyError::Malformed,
        })?;
    if !verified {
        return Err(VerifyError::BadSignature);
    }
    check_claims(read_payload(payload)?, policy, now)
}

/// The claims registered by RFC 7519 that may appear only once in a payload.
const REGISTERED: [&str; 5] = ["exp", "nbf", "sub", "iss", "aud"];

/// Reads a verified token's payload: base64url without padding, a JSON object. Refused as
/// [`VerifyError::Malformed`], as `jsonwebtoken::decode` refuses them (gatehouse read payloads
/// with it before and keeps its reading: `the_payload_is_read_as_jsonwebtoken_reads_it`): a
/// registered claim ([`REGISTERED`]) given twice; `exp` or `nbf` as a list or an object that
/// is not empty; `sub` as a list or an object. Any other member given twice counts once, the
/// last.
fn read_payload(payload: &str) -> Result<Map<String, Value>, VerifyError> {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| VerifyError::Malformed)?;
    let Payload(claims) = serde_json::from_slice(&json).map_err(|_| VerifyError::Malformed)?;
    // jsonwebtoken read these three with a reader that stopped at a list or an object it did
    // not expect (`sub` any, `exp` and `nbf` unless empty), and the rest no longer parsed.
    let filled = |name| match claims.get(name) {
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(members)) => !members.is_empty(),
        _ => false,
    };
    if filled("exp")
        || filled("nbf")
        || matches!(claims.get("sub"), Some(Value::Array(_) | Value::Object(_)))
    {
        return Err(VerifyError::Malformed);
    }
    Ok(claims)
}

/// A JSON object read into a map, refusing a [`REGISTERED`] claim given twice.
struct Payload(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Payload;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Payload, A::Error> {
                let mut claims = Map::new();
                while let Some((name, value)) = a.next_entry::<String, Value>()? {
                    if REGISTERED.contains(&name.as_str()) && claims.contains_key(&name) {
                        return Err(serde::de::Error::custom("a registered claim given twice"));
                    }
                    claims.insert(name, value);
                }
                Ok(Payload(claims))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Why a header jsonwebtoken could not read was refused: an `alg` string it does not know
/// (`none`, `None`, `RS1`, ...) is [`VerifyError::UnknownAlgorithm`], anything else
/// [`VerifyError::Malformed`].
fn unknown_algorithm(token: &str) -> VerifyError {
    use base64::Engine as _;
    let parts: Vec<&str> = token.split('.').collect();
    let [header, _, _] = parts.as_slice() else {
        return VerifyError::Malformed;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return VerifyError::Malformed;
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(h)) => match h.get("alg") {
            Some(Value::String(alg))
                if serde_json::from_value::<Algorithm>(Value::String(alg.clone())).is_err() =>
            {
                VerifyError::UnknownAlgorithm { found: cut(alg) }
            }
            _ => VerifyError::Malformed,
        },
        _ => VerifyError::Malformed,
    }
}

/// How many characters of a header value a refusal repeats ([`cut`]).
pub const HEADER_TEXT_CHARS: usize = 32;

/// The first [`HEADER_TEXT_CHARS`] characters of header text the token's sender chose (`alg`,
/// `typ`, `kid`): a refusal names it, and its message reaches logs and the client, so it is
/// never the whole of a header that may be 16 KiB long.
fn cut(text: &str) -> String {
    text.chars().take(HEADER_TEXT_CHARS).collect()
}

impl VerifyError {
    /// A short, fixed label for the reason (a metric label: never user data).
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Malformed => "malformed",
            VerifyError::AlgorithmNotAllowed(_) | VerifyError::UnknownAlgorithm { .. } => {
                "algorithm"
            }
            VerifyError::CriticalHeader => "critical_header",
            VerifyError::UnknownKey { .. } => "unknown_key",
            VerifyError::KeyMismatch(_) | VerifyError::KeyNotForSignatures { .. } => "key_mismatch",
            VerifyError::WrongType { .. } => "type",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::WrongIssuer { .. } => "wrong_issuer",
            VerifyError::WrongAudience { .. } => "audience",
            VerifyError::WrongAuthorizedParty { .. } => "authorized_party",
            VerifyError::WrongClient { .. } => "client",
            VerifyError::Expired { .. } => "expired",
            VerifyError::NotYetValid { .. } => "not_yet_valid",
            VerifyError::IssuedInFuture { .. } => "issued_in_future",
            VerifyError::MissingClaim(_) => "missing_claim",
            VerifyError::BadNumericDate(_) => "numeric_date",
        }
    }
}

/// Checks the `typ` header: absent, `JWT`, or (`access_tokens`) `at+jwt`, compared without
/// regard to case and with an optional `application/` prefix (RFC 7515 §4.1.9, RFC 9068 §2.1).
pub fn check_type(typ: Option<&str>, access_tokens: bool) -> Result<(), VerifyError> {
    let Some(typ) = typ else {
        return Ok(());
    };
    let lower = typ.to_ascii_lowercase();
    let bare = lower.strip_prefix("application/").unwrap_or(&lower);
    match bare {
        "jwt" => Ok(()),
        "at+jwt" if access_tokens => Ok(()),
        _ => Err(VerifyError::WrongType { found: cut(typ) }),
    }
}

/// The key that verifies a token with `kid` and `alg`, among the keys that may: see the
/// module's Security section. With a `kid`, the first candidate with that `kid`; without, the
/// only candidate of the set.
pub fn select_key<'a>(
    keys: &'a JwkSet,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<&'a Jwk, VerifyError> {
    let named: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.common.key_id.as_deref() == Some(kid)))
        .collect();
    if named.is_empty() {
        return Err(VerifyError::UnknownKey { kid: kid.map(cut) });
    }
    let signing: Vec<&Jwk> = named.into_iter().filter(|k| for_signatures(k)).collect();
    if signing.is_empty() {
        return Err(VerifyError::KeyNotForSignatures { kid: kid.map(cut) });
    }
    let fitting: Vec<&Jwk> = signing.into_iter().filter(|k| fits(k, alg)).collect();
    match (kid, fitting.as_slice()) {
        (_, []) => Err(VerifyError::KeyMismatch(alg)),
        (Some(_), [first, ..]) | (None, [first]) => Ok(*first),
        (None, _) => Err(VerifyError::UnknownKey { kid: None }),
    }
}

/// Whether the key may verify signatures: `use` absent or `sig`, `key_ops` absent or holding
/// `verify`.
fn for_signatures(jwk: &Jwk) -> bool {
    let use_ok = matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    let ops_ok = jwk
        .common
        .key_operations
        .as_ref()
        .is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    use_ok && ops_ok
}

/// Whether the key's type, curve and (when named) `alg` fit `alg`.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if let Some(key_alg) = jwk.common.key_algorithm
        && !key_algorithm_is(key_alg, alg)
    {
        return false;
    }
    match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    }
}

fn key_algorithm_is(key_alg: KeyAlgorithm, alg: Algorithm) -> bool {
    matches!(
        (key_alg, alg),
        (KeyAlgorithm::RS256, Algorithm::RS256)
            | (KeyAlgorithm::RS384, Algorithm::RS384)
            | (KeyAlgorithm::RS512, Algorithm::RS512)
            | (KeyAlgorithm::PS256, Algorithm::PS256)
            | (KeyAlgorithm::PS384, Algorithm::PS384)
            | (KeyAlgorithm::PS512, Algorithm::PS512)
            | (KeyAlgorithm::ES256, Algorithm::ES256)
            | (KeyAlgorithm::ES384, Algorithm::ES384)
            | (KeyAlgorithm::EdDSA, Algorithm::EdDSA)
    )
}

/// Checks the registered claims of a payload whose signature is already verified.
pub fn check_claims(
    claims: Map<String, Value>,
    policy: &Policy,
    now: i64,
) -> Result<Verified, VerifyError> {
    let skew = i64::try_from(policy.skew_secs).unwrap_or(0);
    let issuer = string_claim(&claims, "iss")?;
    if issuer != policy.issuer {
        return Err(VerifyError::WrongIssuer { found: issuer });
    }
    let audiences = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(VerifyError::MissingClaim("aud"))?,
        _ => return Err(VerifyError::MissingClaim("aud")),
    };
    if !audiences.iter().any(|a| policy.audiences.contains(a)) {
        return Err(VerifyError::WrongAudience { found: audiences });
    }
    if policy.rules == ClaimRules::Kubernetes {
        return check_kubernetes_claims(claims, issuer, audiences, now);
    }
    let authorized_party = match claims.get("azp") {
        None | Some(Value::Null) => None,
        Some(Value::String(azp)) => {
            if !policy.authorized_parties.contains(azp) {
                return Err(VerifyError::WrongAuthorizedParty { found: azp.clone() });
            }
            Some(azp.clone())
        }
        Some(_) => return Err(VerifyError::MissingClaim("azp")),
    };
    match claims.get("client_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(client)) => {
            if !policy.authorized_parties.contains(client) {
                return Err(VerifyError::WrongClient {
                    found: client.clone(),
                });
            }
        }
        Some(_) => return Err(VerifyError::MissingClaim("client_id")),
    }
    let exp = int_claim(&claims, "exp")?.ok_or(VerifyError::MissingClaim("exp"))?;
    if now > exp.saturating_add(skew) {
        return Err(VerifyError::Expired { exp });
    }
    if let Some(nbf) = int_claim(&claims, "nbf")?
        && now.saturating_add(skew) < nbf
    {
        return Err(VerifyError::NotYetValid { nbf });
    }
    if let Some(iat) = int_claim(&claims, "iat")?
        && iat > now.saturating_add(skew)
    {
        return Err(VerifyError::IssuedInFuture { iat });
    }
    let subject = string_claim(&claims, "sub")?;
    Ok(Verified {
        issuer,
        subject,
        audiences,
        authorized_party,
        expires_at: exp,
        claims,
    })
}

/// The rest of [`check_claims`] by the kube-apiserver's rules: go-oidc v2's `Verify` (exp
/// without leeway, nbf with a minute, iat and azp unchecked, sub optional but a string).
fn check_kubernetes_claims(
    claims: Map<String, Value>,
    issuer: String,
    audiences: Vec<String>,
    now: i64,
) -> Result<Verified, VerifyError> {
    let subject = match claims.get("sub") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(VerifyError::MissingClaim("sub")),
    };
    let authorized_party = claims.get("azp").and_then(Value::as_str).map(str::to_owned);
    // go-oidc: a missing exp is the zero time, before any now; an exp in the current second
    // is before the kube-apiserver's clock, which has nanoseconds.
    let exp = int_claim(&claims, "exp")?.ok_or(VerifyError::MissingClaim("exp"))?;
    if exp <= now {
        return Err(VerifyError::Expired { exp });
    }
    if let Some(nbf) = int_claim(&claims, "nbf")?
        && now.saturating_add(KUBERNETES_NBF_LEEWAY_SECS) < nbf
    {
        return Err(VerifyError::NotYetValid { nbf });
    }
    // iat is not compared with the clock, but must be a number (go-oidc decodes it; a null
    // does not decode either).
    if claims.get("iat") == Some(&Value::Null) {
        return Err(VerifyError::MissingClaim("iat"));
    }
    int_claim(&claims, "iat")?;
    // go-oidc decodes these into strings: another type refuses the token.
    for name in ["nonce", "at_hash"] {
        if !matches!(
            claims.get(name),
            None | Some(Value::Null | Value::String(_))
        ) {
            return Err(VerifyError::MissingClaim(name));
        }
    }
    distributed_claims_are_well_formed(&claims)?;
    Ok(Verified {
        issuer,
        subject,
        audiences,
        authorized_party,
        expires_at: exp,
        claims,
    })
}

/// go-oidc v2's reading of `_claim_names` and `_claim_sources` (OIDC Core 5.6.2): names map to
/// non-empty source names that `_claim_sources` defines, sources are objects of strings; it
/// refuses the token otherwise, whatever the mappings use.
fn distributed_claims_are_well_formed(claims: &Map<String, Value>) -> Result<(), VerifyError> {
    let sources = match claims.get("_claim_sources") {
        None | Some(Value::Null) => None,
        Some(Value::Object(sources)) => {
            for source in sources.values() {
                match source {
                    Value::Null => {}
                    Value::Object(fields) => {
                        // Go matches these field names without regard to case.
                        let bad = fields.iter().any(|(k, v)| {
                            ["endpoint", "access_token"].contains(&k.to_ascii_lowercase().as_str())
                                && !matches!(v, Value::String(_) | Value::Null)
                        });
                        if bad {
                            return Err(VerifyError::MissingClaim("_claim_sources"));
                        }
                    }
                    _ => return Err(VerifyError::MissingClaim("_claim_sources")),
                }
            }
            Some(sources)
        }
        Some(_) => return Err(VerifyError::MissingClaim("_claim_sources")),
    };
    match claims.get("_claim_names") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(names)) => {
            for source in names.values() {
                let Value::String(source) = source else {
                    return Err(VerifyError::MissingClaim("_claim_names"));
                };
                if source.is_empty() || !sources.is_some_and(|s| s.contains_key(source)) {
                    return Err(VerifyError::MissingClaim("_claim_names"));
                }
            }
            Ok(())
        }
        Some(_) => Err(VerifyError::MissingClaim("_claim_names")),
    }
}

fn string_claim(claims: &Map<String, Value>, name: &'static str) -> Result<String, VerifyError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(VerifyError::MissingClaim(name))
}

fn int_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, VerifyError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => numeric_date(n)
            .map(Some)
            .ok_or(VerifyError::BadNumericDate(name)),
        Some(_) => Err(VerifyError::MissingClaim(name)),
    }
}

/// A time claim's seconds: a whole number within ±[`MAX_NUMERIC_DATE`], written as an integer
/// or as a float without fraction; `None` for anything else (never a cast that saturates).
fn numeric_date(n: &serde_json::Number) -> Option<i64> {
    let seconds = match n.as_i64() {
        Some(i) => i,
        // An integer beyond i64 (u64 up to 2^64 - 1) is far beyond the bound.
        None if n.is_u64() => return None,
        None => {
            let f = n.as_f64()?;
            // Compared as floats first: 2^53 is exact as a double, and a value within it
            // converts to i64 exactly.
            let bound = 9_007_199_254_740_992.0_f64; // 2^53
            if !f.is_finite() || f.fract() != 0.0 || f.abs() > bound {
                return None;
            }
            f as i64
        }
    };
    (-MAX_NUMERIC_DATE..=MAX_NUMERIC_DATE)
        .contains(&seconds)
        .then_some(seconds)
}

#[cfg(test)]
mod tests;
