//! Public verification keys for Better Auth `jwt()` plugin tokens: JWKs, JWK sets and rows of
//! the `jwks` table, turned into RustCrypto verifying keys.
//!
//! The Better Auth 1.7.25 rules this module owns:
//!
//! * the plugin signs with exactly five algorithms: `EdDSA` (Ed25519, the default), `ES256`
//!   (P-256), `ES512` (P-521), `RS256` (RSASSA-PKCS1-v1_5, SHA-256) and `PS256` (RSASSA-PSS,
//!   SHA-256, MGF1-SHA-256, salt length 32). Nothing else (no `none`, no `HS*`) is accepted;
//! * `GET /api/auth/jwks` answers `{"keys":[…]}`, each entry being
//!   `{alg: row.alg ?? defaultAlg, crv: row.crv ?? cfg.crv, ...JSON.parse(row.publicKey), kid: row.id}`,
//!   with no `use` and no `key_ops`; an RSA key may carry the configured curve as `crv`
//!   (an RSA key made before the configuration moved to EdDSA), which is ignored, as jose does;
//! * the `jwks` table stores `publicKey` as the JSON of the exported public JWK (no `kid`, no
//!   `alg`); rows made before the `alg`/`crv` columns existed fall back to the configured
//!   algorithm;
//! * every key is pinned to one algorithm, and a token is only checked with the algorithm of the
//!   key its `kid` names (as Better Auth's own `verifyJWT` does).
//!
//! Keys that Better Auth never makes are refused rather than guessed at: RSA moduli outside
//! 2048–8192 bits, even or oversized RSA exponents, EC points off their curve, weak (small-order)
//! Ed25519 keys. Nothing here can panic on any input.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::{BigUint, RsaPublicKey};
use serde_json::{Map, Value};
use sha2::Sha256;

/// Smallest RSA modulus accepted, in bits (Better Auth generates 2048-bit keys by default).
const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits: verification cost grows with the modulus.
const RSA_MAX_BITS: usize = 8192;
/// Largest RSA public exponent accepted (exclusive bound 2^32; 65537 is what everyone uses).
const RSA_MAX_EXPONENT: u64 = 1 << 32;
/// Length of a SHA-256 digest.
const SHA256_LEN: usize = 32;
/// The DER `DigestInfo` header before a SHA-256 digest in an RS256 signature (RFC 8017 §9.2,
/// note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
/// Longest attacker-influenced string quoted back in an error message.
const MAX_QUOTED: usize = 64;

/// A JWS signature algorithm that Better Auth's `jwt()` plugin signs with.
///
/// Its [`FromStr`] accepts exactly the JOSE names (`"EdDSA"`, `"ES256"`, `"ES512"`, `"RS256"`,
/// `"PS256"`); anything else, `"none"` and `"HS256"` included, is an error.
///
/// ```
/// # use tower_auth_session::jwt::Algorithm;
/// let alg: Algorithm = "ES256".parse().unwrap();
/// assert_eq!(alg, Algorithm::Es256);
/// assert_eq!(alg.to_string(), "ES256");
/// assert!("none".parse::<Algorithm>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `EdDSA`: Ed25519 (RFC 8037), a raw 64-byte signature. Better Auth's default.
    EdDsa,
    /// `ES256`: ECDSA on P-256 with SHA-256, a 64-byte `r‖s` signature.
    Es256,
    /// `ES512`: ECDSA on P-521 with SHA-512, a 132-byte `r‖s` signature.
    Es512,
    /// `RS256`: RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// `PS256`: RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
    Ps256,
}

impl Algorithm {
    /// Every algorithm Better Auth's `jwt()` plugin can sign with.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::EdDsa,
        Algorithm::Es256,
        Algorithm::Es512,
        Algorithm::Rs256,
        Algorithm::Ps256,
    ];

    /// The JOSE name, as in a token's `alg` header: `"EdDSA"`, `"ES256"`, `"ES512"`, `"RS256"`
    /// or `"PS256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Es256 => "ES256",
            Algorithm::Es512 => "ES512",
            Algorithm::Rs256 => "RS256",
            Algorithm::Ps256 => "PS256",
        }
    }

    /// The `kty` and `crv` a key for this algorithm has (`crv` is `None` for RSA).
    fn key_type(self) -> (&'static str, Option<&'static str>) {
        match self {
            Algorithm::EdDsa => ("OKP", Some("Ed25519")),
            Algorithm::Es256 => ("EC", Some("P-256")),
            Algorithm::Es512 => ("EC", Some("P-521")),
            Algorithm::Rs256 | Algorithm::Ps256 => ("RSA", None),
        }
    }

    fn is_rsa(self) -> bool {
        matches!(self, Algorithm::Rs256 | Algorithm::Ps256)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = JwkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or_else(|| JwkError::UnsupportedAlgorithm { alg: quote(s) })
    }
}

/// Why a JWK, a JWK set or a `jwks` row cannot be used to verify Better Auth tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// An `alg` that is not one of Better Auth's five signing algorithms.
    #[error(
        "unsupported JWS algorithm {alg:?}: Better Auth's jwt() plugin signs with EdDSA, ES256, \
         ES512, RS256 or PS256 (set jwks.keyPairConfig.alg to one of them)"
    )]
    UnsupportedAlgorithm {
        /// The algorithm name as given (shortened if long).
        alg: String,
    },
    /// The JWK is not a JSON object.
    #[error("a JWK must be a JSON object such as {{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":…,\"kid\":…}}")]
    NotAnObject,
    /// The JWK has no string `kid`.
    #[error(
        "the JWK has no string \"kid\": Better Auth names every key by its jwks row id; \
         give the key the kid its tokens carry"
    )]
    MissingKid,
    /// A member is missing, has the wrong JSON type, or does not decode to what it must.
    #[error("JWK {kid:?}: \"{member}\" is missing or invalid; it must be {expected}")]
    BadMember {
        /// The key's `kid`.
        kid: String,
        /// The JWK member at fault (`"kty"`, `"x"`, `"n"`, …).
        member: &'static str,
        /// What would work.
        expected: &'static str,
    },
    /// A key type or curve Better Auth does not sign with.
    #[error(
        "JWK {kid:?}: key type {kty:?}{crv} is not supported; Better Auth's keys are \
         OKP/Ed25519, EC/P-256, EC/P-521 or RSA"
    )]
    UnsupportedKey {
        /// The key's `kid`.
        kid: String,
        /// Its `kty`.
        kty: String,
        /// Its `crv`, formatted as `" crv \"…\""`, or empty.
        crv: String,
    },
    /// The key's `kty`/`crv` do not fit its `alg`.
    #[error(
        "JWK {kid:?}: alg {alg} needs kty {want_kty:?}{want_crv}, but the key has kty {kty:?}{crv}; \
         fix the key's \"alg\" (or the jwks row's alg column)"
    )]
    AlgorithmMismatch {
        /// The key's `kid`.
        kid: String,
        /// The algorithm the key claims.
        alg: Algorithm,
        /// The `kty` that algorithm needs.
        want_kty: &'static str,
        /// The `crv` that algorithm needs, formatted as `" crv \"…\""`, or empty.
        want_crv: String,
        /// The key's `kty`.
        kty: String,
        /// The key's `crv`, formatted as `" crv \"…\""`, or empty.
        crv: String,
    },
    /// An RSA key without `alg`: RS256 and PS256 use the same keys.
    #[error(
        "RSA JWK {kid:?} has no \"alg\", and an RSA key may sign RS256 or PS256; add \"alg\" to \
         the key or pass the configured algorithm (Better Auth's jwks.keyPairConfig.alg)"
    )]
    AmbiguousRsaAlgorithm {
        /// The key's `kid`.
        kid: String,
    },
    /// The key is marked for another use than verifying signatures (`use` or `key_ops`).
    #[error("JWK {kid:?} is not a signature key ({reason}); publish a key with \"use\":\"sig\" or no \"use\"")]
    NotForSignatures {
        /// The key's `kid`.
        kid: String,
        /// Which member says so.
        reason: &'static str,
    },
    /// The key material is not a valid public key (a point off its curve, a weak key, …).
    #[error("JWK {kid:?} is not a valid public key: {reason}")]
    InvalidKey {
        /// The key's `kid`.
        kid: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An RSA modulus outside 2048–8192 bits.
    #[error(
        "RSA JWK {kid:?} has a {bits}-bit modulus; only 2048 to 8192 bits are accepted \
         (Better Auth's default is 2048)"
    )]
    RsaModulusSize {
        /// The key's `kid`.
        kid: String,
        /// The modulus size in bits.
        bits: usize,
    },
    /// An RSA public exponent that is even, 1, or 2^32 or more.
    #[error(
        "RSA JWK {kid:?} has an unusable public exponent; it must be odd, at least 3 and below \
         2^32 (Better Auth uses 65537, \"AQAB\")"
    )]
    RsaExponent {
        /// The key's `kid`.
        kid: String,
    },
    /// A JWK set body that is not JSON.
    #[error("the JWKS is not JSON ({source}); expected {{\"keys\":[…]}} as GET /api/auth/jwks serves it")]
    JwksJson {
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A JWK set body that is JSON but not a `{"keys":[…]}` object.
    #[error("the JWKS is not a JWK set: {reason}; expected {{\"keys\":[…]}} as GET /api/auth/jwks serves it")]
    NotAJwks {
        /// What is wrong.
        reason: &'static str,
    },
    /// A `jwks` row whose `publicKey` column is not a JSON object.
    #[error(
        "the publicKey column of jwks row {id:?} is not a JSON object ({source}); \
         it must hold the exported public JWK Better Auth wrote"
    )]
    RowPublicKey {
        /// The row's `id` (the key's `kid`).
        id: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// One public key that verifies Better Auth tokens: its `kid`, the one [`Algorithm`] it is
/// pinned to, and the verifying key itself.
///
/// Its `Debug` shows only the `kid` and the algorithm.
///
/// ```
/// # use tower_auth_session::jwt::{Algorithm, Jwk};
/// let jwk = Jwk::from_json(&serde_json::json!({
///     "alg": "EdDSA", "crv": "Ed25519", "kty": "OKP",
///     "x": "QP7Yto5-UPxlXt6aicx79PM-FbI8LSy1cMiq0cuVlBg",
///     "kid": "9j4qLiieU2xSw1XJBo8HP0Erf8B3jGn8",
/// }))?;
/// assert_eq!(jwk.kid(), "9j4qLiieU2xSw1XJBo8HP0Erf8B3jGn8");
/// assert_eq!(jwk.algorithm(), Algorithm::EdDsa);
/// # Ok::<(), tower_auth_session::jwt::JwkError>(())
/// ```
#[derive(Clone)]
pub struct Jwk {
    kid: String,
    alg: Algorithm,
    key: Key,
}

/// The verifying key, one variant per algorithm family (RSA split by padding).
#[derive(Clone)]
enum Key {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
    /// Verified through `Pkcs1v15Sign` with a fixed DigestInfo prefix: `pkcs1v15::VerifyingKey`
    /// needs `sha2`'s `oid` feature, which the crate does not enable.
    RsaPkcs1(RsaPublicKey),
    RsaPss(rsa::pss::VerifyingKey<Sha256>),
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Jwk {
    /// Reads one entry of a JWK set, as `GET /api/auth/jwks` serves it.
    ///
    /// `kid` is required. `alg`, when present, decides the algorithm and must fit `kty`/`crv`;
    /// when absent it is derived from them (OKP/Ed25519 → EdDSA, EC/P-256 → ES256, EC/P-521 →
    /// ES512), except for RSA keys, which serve both RS256 and PS256 and so need an `alg` (or use
    /// [`Jwk::from_better_auth_row`], which takes the configured default). A key whose `use` is
    /// not `"sig"`, or whose `key_ops` lacks `"verify"`, is refused. Private members (`d`, …) are
    /// ignored and never kept.
    pub fn from_json(jwk: &Value) -> Result<Jwk, JwkError> {
        Self::from_json_with_default(jwk, None)
    }

    /// Reads one row of Better Auth's `jwks` table: its `id` (the `kid`), its `publicKey` column
    /// (the JSON of the exported public JWK) and its nullable `alg` and `crv` columns.
    ///
    /// The key is assembled as Better Auth's JWKS endpoint does, `{alg: alg ?? default, crv: crv
    /// ?? …, ...publicKey, kid: id}`, except that a row without `alg` takes the algorithm its
    /// curve implies for EC and OKP keys, and `default_alg` (Better Auth's
    /// `jwks.keyPairConfig.alg`, `EdDSA` unless configured) only for RSA keys.
    ///
    /// ```
    /// # use tower_auth_session::jwt::{Algorithm, Jwk};
    /// let jwk = Jwk::from_better_auth_row(
    ///     "6KlDvRY90cw0gvVunS5tY93AD8Bnwx8e",
    ///     r#"{"kty":"EC","x":"uREJQsFvO6bMDwoy_dsWteHxHLtrjQHcZ-r8DAJiJ2M","y":"k9d28sWTZrCQicPkg-Unzv8SWx1bnq7WUaduWMHyikc","crv":"P-256"}"#,
    ///     Some("ES256"),
    ///     Some("P-256"),
    ///     Algorithm::EdDsa,
    /// )?;
    /// assert_eq!(jwk.algorithm(), Algorithm::Es256);
    /// # Ok::<(), tower_auth_session::jwt::JwkError>(())
    /// ```
    pub fn from_better_auth_row(
        id: &str,
        public_key: &str,
        alg: Option<&str>,
        crv: Option<&str>,
        default_alg: Algorithm,
    ) -> Result<Jwk, JwkError> {
        let mut entry: Map<String, Value> =
            serde_json::from_str(public_key).map_err(|source| JwkError::RowPublicKey {
                id: quote(id),
                source,
            })?;
        // `...publicKey` comes after `alg` and `crv` in Better Auth's spread, so its own members
        // win; `kid: row.id` comes last and always wins.
        if let Some(alg) = alg {
            entry
                .entry("alg")
                .or_insert_with(|| Value::String(alg.to_owned()));
        }
        if let Some(crv) = crv {
            entry
                .entry("crv")
                .or_insert_with(|| Value::String(crv.to_owned()));
        }
        entry.insert("kid".to_owned(), Value::String(id.to_owned()));
        Self::from_json_with_default(&Value::Object(entry), Some(default_alg))
    }

    /// The key id, matched against a token's `kid` header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Whether `signature` is this key's signature of `signing_input` under its algorithm.
    /// False on any length or format problem; never panics.
    pub(crate) fn verify(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            Key::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify_strict(signing_input, &sig).is_ok()),
            Key::P256(key) => {
                use p256::ecdsa::signature::Verifier as _;
                p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|sig| key.verify(signing_input, &sig).is_ok())
            }
            Key::P521(key) => {
                use p521::ecdsa::signature::Verifier as _;
                p521::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|sig| key.verify(signing_input, &sig).is_ok())
            }
            Key::RsaPkcs1(key) => {
                use rsa::traits::PublicKeyParts as _;
                use sha2::Digest as _;
                let scheme = rsa::Pkcs1v15Sign {
                    hash_len: Some(SHA256_LEN),
                    prefix: Box::new(SHA256_DIGEST_INFO),
                };
                signature.len() == key.size()
                    && key
                        .verify(scheme, &Sha256::digest(signing_input), signature)
                        .is_ok()
            }
            Key::RsaPss(key) => {
                use rsa::signature::Verifier as _;
                use rsa::traits::PublicKeyParts as _;
                signature.len() == key.as_ref().size()
                    && rsa::pss::Signature::try_from(signature)
                        .is_ok_and(|sig| key.verify(signing_input, &sig).is_ok())
            }
        }
    }

    fn from_json_with_default(jwk: &Value, default: Option<Algorithm>) -> Result<Jwk, JwkError> {
        let obj = jwk.as_object().ok_or(JwkError::NotAnObject)?;
        let kid = match obj.get("kid") {
            Some(Value::String(kid)) => kid.clone(),
            _ => return Err(JwkError::MissingKid),
        };
        let member =
            |name: &'static str, expected: &'static str| -> Result<Option<&str>, JwkError> {
                match obj.get(name) {
                    None => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.as_str())),
                    Some(_) => Err(JwkError::BadMember {
                        kid: kid.clone(),
                        member: name,
                        expected,
                    }),
                }
            };
        let kty = member("kty", "a string: \"OKP\", \"EC\" or \"RSA\"")?.ok_or_else(|| {
            JwkError::BadMember {
                kid: kid.clone(),
                member: "kty",
                expected: "a string: \"OKP\", \"EC\" or \"RSA\"",
            }
        })?;
        // Better Auth serves `crv: row.crv ?? cfg.crv` for every key, so an RSA key made before
        // the configuration moved to EdDSA carries `"crv":"Ed25519"`; jose ignores `crv` on RSA
        // keys, and so does this.
        let crv = if kty == "RSA" {
            None
        } else {
            member("crv", "a string: \"Ed25519\", \"P-256\" or \"P-521\"")?
        };
        let alg = member("alg", "a string: EdDSA, ES256, ES512, RS256 or PS256")?;

        if let Some(usage) = member("use", "a string, \"sig\"")? {
            if usage != "sig" {
                return Err(JwkError::NotForSignatures {
                    kid,
                    reason: "its \"use\" is not \"sig\"",
                });
            }
        }
        if let Some(ops) = obj.get("key_ops") {
            let verifies = ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
            if !verifies {
                return Err(JwkError::NotForSignatures {
                    kid,
                    reason: "its \"key_ops\" lacks \"verify\"",
                });
            }
        }
        let alg = match alg {
            Some(alg) => alg.parse::<Algorithm>()?,
            None => derive_algorithm(&kid, kty, crv, default)?,
        };
        let (want_kty, want_crv) = alg.key_type();
        if kty != want_kty || crv != want_crv {
            return Err(JwkError::AlgorithmMismatch {
                kid,
                alg,
                want_kty,
                want_crv: fmt_crv(want_crv),
                kty: quote(kty),
                crv: fmt_crv(crv),
            });
        }

        let key = match alg {
            Algorithm::EdDsa => {
                let x: [u8; 32] = fixed_bytes(obj, &kid, "x", "32 bytes of unpadded base64url")?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|_| {
                    JwkError::InvalidKey {
                        kid: kid.clone(),
                        reason: "\"x\" is not an Ed25519 point",
                    }
                })?;
                if key.is_weak() {
                    return Err(JwkError::InvalidKey {
                        kid,
                        reason: "the Ed25519 key has small order",
                    });
                }
                Key::Ed25519(key)
            }
            Algorithm::Es256 => {
                let point = sec1_point::<32>(obj, &kid)?;
                Key::P256(
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| {
                        JwkError::InvalidKey {
                            kid: kid.clone(),
                            reason: "(x, y) is not a point of P-256",
                        }
                    })?,
                )
            }
            Algorithm::Es512 => {
                let point = sec1_point::<66>(obj, &kid)?;
                Key::P521(
                    p521::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| {
                        JwkError::InvalidKey {
                            kid: kid.clone(),
                            reason: "(x, y) is not a point of P-521",
                        }
                    })?,
                )
            }
            Algorithm::Rs256 | Algorithm::Ps256 => {
                let public = rsa_public_key(obj, &kid)?;
                if alg == Algorithm::Rs256 {
                    Key::RsaPkcs1(public)
                } else {
                    // Salt length = digest length = 32, as Better Auth (jose) signs.
                    Key::RsaPss(rsa::pss::VerifyingKey::new(public))
                }
            }
        };
        if obj.contains_key("d") {
            tracing::warn!(
                kid = %quote(&kid),
                "JWK includes a private key (\"d\"); only its public part is kept, but a JWKS \
                 should publish public keys only: rotate this key"
            );
        }
        Ok(Jwk { kid, alg, key })
    }
}

/// The algorithm of a key without `alg`: implied by the curve, or the default for RSA.
fn derive_algorithm(
    kid: &str,
    kty: &str,
    crv: Option<&str>,
    default: Option<Algorithm>,
) -> Result<Algorithm, JwkError> {
    match (kty, crv) {
        ("OKP", Some("Ed25519")) => Ok(Algorithm::EdDsa),
        ("EC", Some("P-256")) => Ok(Algorithm::Es256),
        ("EC", Some("P-521")) => Ok(Algorithm::Es512),
        ("RSA", _) => match default {
            Some(alg) if alg.is_rsa() => Ok(alg),
            _ => Err(JwkError::AmbiguousRsaAlgorithm {
                kid: kid.to_owned(),
            }),
        },
        _ => Err(JwkError::UnsupportedKey {
            kid: kid.to_owned(),
            kty: quote(kty),
            crv: fmt_crv(crv),
        }),
    }
}

/// Decodes an unpadded base64url member that must be exactly `N` bytes long.
fn fixed_bytes<const N: usize>(
    obj: &Map<String, Value>,
    kid: &str,
    member: &'static str,
    expected: &'static str,
) -> Result<[u8; N], JwkError> {
    b64_member(obj, kid, member, expected)?
        .try_into()
        .map_err(|_| JwkError::BadMember {
            kid: kid.to_owned(),
            member,
            expected,
        })
}

/// Decodes an unpadded base64url member (RFC 7515 §2: no padding, canonical trailing bits).
fn b64_member(
    obj: &Map<String, Value>,
    kid: &str,
    member: &'static str,
    expected: &'static str,
) -> Result<Vec<u8>, JwkError> {
    obj.get(member)
        .and_then(Value::as_str)
        .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        .ok_or_else(|| JwkError::BadMember {
            kid: kid.to_owned(),
            member,
            expected,
        })
}

/// The uncompressed SEC1 encoding `04‖x‖y` of an EC JWK whose coordinates are `N` bytes each.
fn sec1_point<const N: usize>(obj: &Map<String, Value>, kid: &str) -> Result<Vec<u8>, JwkError> {
    let expected = if N == 32 {
        "32 bytes of unpadded base64url (a P-256 coordinate)"
    } else {
        "66 bytes of unpadded base64url (a P-521 coordinate)"
    };
    let x: [u8; N] = fixed_bytes(obj, kid, "x", expected)?;
    let y: [u8; N] = fixed_bytes(obj, kid, "y", expected)?;
    let mut point = Vec::with_capacity(1 + 2 * N);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(point)
}

/// The RSA public key of a JWK, refusing moduli outside 2048–8192 bits and bad exponents.
fn rsa_public_key(obj: &Map<String, Value>, kid: &str) -> Result<RsaPublicKey, JwkError> {
    let n = b64_member(obj, kid, "n", "the modulus in unpadded base64url")?;
    let e = b64_member(
        obj,
        kid,
        "e",
        "the exponent in unpadded base64url, e.g. \"AQAB\"",
    )?;
    let odd = n.last().is_some_and(|last| last & 1 == 1);
    let n = BigUint::from_bytes_be(&n);
    let bits = n.bits();
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(JwkError::RsaModulusSize {
            kid: kid.to_owned(),
            bits,
        });
    }
    if !odd {
        return Err(JwkError::InvalidKey {
            kid: kid.to_owned(),
            reason: "the RSA modulus is even",
        });
    }
    let exponent = {
        let significant = e.iter().position(|&b| b != 0).map_or(&[][..], |i| &e[i..]);
        if significant.len() > 8 {
            None
        } else {
            Some(
                significant
                    .iter()
                    .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
            )
        }
    };
    match exponent {
        Some(e) if e >= 3 && e % 2 == 1 && e < RSA_MAX_EXPONENT => {}
        _ => {
            return Err(JwkError::RsaExponent {
                kid: kid.to_owned(),
            })
        }
    }
    RsaPublicKey::new_with_max_size(n, BigUint::from_bytes_be(&e), RSA_MAX_BITS).map_err(|_| {
        JwkError::InvalidKey {
            kid: kid.to_owned(),
            reason: "the RSA modulus and exponent do not form a public key",
        }
    })
}

/// A `crv` for an error message: `" crv \"P-256\""`, or empty.
fn fmt_crv(crv: Option<&str>) -> String {
    crv.map_or_else(String::new, |crv| format!(" crv {:?}", quote(crv)))
}

/// An attacker-influenced string, shortened for error messages and logs.
fn quote(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

/// The keys that verify Better Auth tokens, looked up by `kid`: the body of
/// `GET /api/auth/jwks`, or keys built in code.
///
/// ```
/// # use tower_auth_session::jwt::{Algorithm, JwkSet};
/// let set = JwkSet::from_json(br#"{"keys":[
///   {"alg":"EdDSA","crv":"Ed25519","x":"QP7Yto5-UPxlXt6aicx79PM-FbI8LSy1cMiq0cuVlBg","kty":"OKP","kid":"9j4qLiieU2xSw1XJBo8HP0Erf8B3jGn8"},
///   {"kty":"oct","k":"c2VjcmV0","kid":"an-hmac-key-for-something-else"}
/// ]}"#)?;
/// assert_eq!(set.len(), 1); // the symmetric key is skipped
/// assert_eq!(set.get("9j4qLiieU2xSw1XJBo8HP0Erf8B3jGn8").map(|k| k.algorithm()), Some(Algorithm::EdDsa));
/// # Ok::<(), tower_auth_session::jwt::JwkError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

impl JwkSet {
    /// Reads a `{"keys":[…]}` document, as `GET /api/auth/jwks` serves it.
    ///
    /// Entries that cannot verify Better Auth tokens (another key type or algorithm, a key for
    /// encryption, a bad size, no `kid`) are skipped, each with a `debug` log naming its `kid`
    /// and why: a JWKS may carry keys for other uses. When two entries share a `kid`, the first
    /// wins. A body that is not a JSON object with a `keys` array is an error.
    pub fn from_json(body: &[u8]) -> Result<JwkSet, JwkError> {
        let doc: Value =
            serde_json::from_slice(body).map_err(|source| JwkError::JwksJson { source })?;
        let entries = doc
            .as_object()
            .ok_or(JwkError::NotAJwks {
                reason: "the body is not a JSON object",
            })?
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwkError::NotAJwks {
                reason: "it has no \"keys\" array",
            })?;
        let mut keys: Vec<Jwk> = Vec::with_capacity(entries.len());
        for entry in entries {
            match Jwk::from_json(entry) {
                Ok(key) if keys.iter().any(|k| k.kid == key.kid) => {
                    tracing::debug!(kid = %quote(&key.kid), "skipping a JWKS entry: duplicate kid, the first one is kept");
                }
                Ok(key) => keys.push(key),
                Err(error) => {
                    let kid = entry
                        .get("kid")
                        .and_then(Value::as_str)
                        .map_or_else(|| "<none>".to_owned(), quote);
                    tracing::debug!(kid = %kid, %error, "skipping a JWKS entry");
                }
            }
        }
        Ok(JwkSet { keys })
    }

    /// A set of keys built in code. When two share a `kid`, the first wins.
    pub fn from_keys(keys: Vec<Jwk>) -> JwkSet {
        let mut set = JwkSet {
            keys: Vec::with_capacity(keys.len()),
        };
        for key in keys {
            if !set.keys.iter().any(|k| k.kid == key.kid) {
                set.keys.push(key);
            }
        }
        set
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in document order.
    pub fn iter(&self) -> std::slice::Iter<'_, Jwk> {
        self.keys.iter()
    }
}

impl<'a> IntoIterator for &'a JwkSet {
    type Item = &'a Jwk;
    type IntoIter = std::slice::Iter<'a, Jwk>;

    fn into_iter(self) -> Self::IntoIter {
        self.keys.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::super::token::vectors::{TOKEN_ENDPOINT, VECTORS};
    use super::*;
    use serde_json::json;

    fn entry(jwks: &str) -> Value {
        let mut doc: Value = serde_json::from_str(jwks).expect("JWKS");
        doc["keys"][0].take()
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An RSA JWK with this many modulus bytes (top bit set, odd) and this exponent.
    fn rsa_jwk(modulus_bytes: usize, e: &[u8]) -> Value {
        let mut n = vec![0x5a; modulus_bytes];
        n[0] = 0xc1;
        n[modulus_bytes - 1] = 0x01;
        json!({ "kty": "RSA", "alg": "RS256", "kid": "r", "n": b64(&n), "e": b64(e) })
    }

    #[test]
    fn algorithm_names() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>().expect("round trip"), alg);
            assert_eq!(alg.to_string(), alg.as_str());
        }
        let names: Vec<_> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names, ["EdDSA", "ES256", "ES512", "RS256", "PS256"]);
        for bad in [
            "none", "HS256", "es256", "EDDSA", "ES384", "RS512", "PS512", "Ed25519", "", " ES256",
        ] {
            assert!(
                matches!(
                    bad.parse::<Algorithm>(),
                    Err(JwkError::UnsupportedAlgorithm { .. })
                ),
                "{bad:?}"
            );
        }
        let long = "X".repeat(10_000);
        let message = long.parse::<Algorithm>().expect_err("long").to_string();
        assert!(message.len() < 300, "{message}");
    }

    #[test]
    fn every_vector_key_reads() {
        for v in VECTORS.iter().chain([&TOKEN_ENDPOINT]) {
            let key = Jwk::from_json(&entry(v.jwks)).expect("vector key");
            assert_eq!((key.kid(), key.algorithm()), (v.kid, v.alg));
            let debug = format!("{key:?}");
            assert!(debug.contains(v.kid) && debug.len() < 80, "{debug}");
        }
    }

    #[test]
    fn alg_is_derived_from_the_curve_but_not_for_rsa() {
        for v in &VECTORS {
            let mut jwk = entry(v.jwks);
            jwk.as_object_mut().expect("object").remove("alg");
            match v.alg {
                Algorithm::Rs256 | Algorithm::Ps256 => assert!(matches!(
                    Jwk::from_json(&jwk),
                    Err(JwkError::AmbiguousRsaAlgorithm { .. })
                )),
                alg => assert_eq!(Jwk::from_json(&jwk).expect("derived").algorithm(), alg),
            }
        }
    }

    #[test]
    fn better_auth_rows() {
        // publicKey as Better Auth stores it (§4.2): no kid, no alg.
        let public_key = |v: &crate::jwt::token::vectors::Vector| {
            let mut jwk = entry(v.jwks);
            let obj = jwk.as_object_mut().expect("object");
            obj.remove("kid");
            obj.remove("alg");
            jwk.to_string()
        };
        let [ed, es256, es512, rs256, ps256] = &VECTORS;
        // Rows with alg and crv columns.
        for v in &VECTORS {
            let crv = entry(v.jwks)["crv"].as_str().map(str::to_owned);
            let key = Jwk::from_better_auth_row(
                v.kid,
                &public_key(v),
                Some(v.alg.as_str()),
                crv.as_deref(),
                Algorithm::EdDsa,
            )
            .expect("row");
            assert_eq!((key.kid(), key.algorithm()), (v.kid, v.alg));
        }
        // Old rows without alg/crv: the curve decides, the default only for RSA.
        let key = Jwk::from_better_auth_row("1", &public_key(ed), None, None, Algorithm::Rs256)
            .expect("ed");
        assert_eq!((key.kid(), key.algorithm()), ("1", Algorithm::EdDsa));
        let key = Jwk::from_better_auth_row("2", &public_key(es256), None, None, Algorithm::EdDsa)
            .expect("p256");
        assert_eq!(key.algorithm(), Algorithm::Es256);
        let key = Jwk::from_better_auth_row("3", &public_key(es512), None, None, Algorithm::EdDsa)
            .expect("p521");
        assert_eq!(key.algorithm(), Algorithm::Es512);
        let key = Jwk::from_better_auth_row("4", &public_key(rs256), None, None, Algorithm::Rs256)
            .expect("rs");
        assert_eq!(key.algorithm(), Algorithm::Rs256);
        let key = Jwk::from_better_auth_row("5", &public_key(ps256), None, None, Algorithm::Ps256)
            .expect("ps");
        assert_eq!(key.algorithm(), Algorithm::Ps256);
        assert!(matches!(
            Jwk::from_better_auth_row("6", &public_key(rs256), None, None, Algorithm::EdDsa),
            Err(JwkError::AmbiguousRsaAlgorithm { .. })
        ));
        // The crv column fills a publicKey without crv.
        let mut no_crv = entry(ed.jwks);
        no_crv
            .as_object_mut()
            .expect("object")
            .retain(|k, _| k == "x" || k == "kty");
        let key = Jwk::from_better_auth_row(
            "7",
            &no_crv.to_string(),
            Some("EdDSA"),
            Some("Ed25519"),
            Algorithm::EdDsa,
        )
        .expect("crv from column");
        assert_eq!(key.algorithm(), Algorithm::EdDsa);
        // The row id is the kid, whatever publicKey says.
        let mut with_kid = entry(ed.jwks);
        with_kid["kid"] = json!("stale");
        let key =
            Jwk::from_better_auth_row("8", &with_kid.to_string(), None, None, Algorithm::EdDsa)
                .expect("kid");
        assert_eq!(key.kid(), "8");
        // Bad rows.
        assert!(matches!(
            Jwk::from_better_auth_row("9", "not json", Some("EdDSA"), None, Algorithm::EdDsa),
            Err(JwkError::RowPublicKey { .. })
        ));
        assert!(matches!(
            Jwk::from_better_auth_row("9", "[1]", Some("EdDSA"), None, Algorithm::EdDsa),
            Err(JwkError::RowPublicKey { .. })
        ));
        assert!(matches!(
            Jwk::from_better_auth_row(
                "9",
                &public_key(es256),
                Some("HS256"),
                None,
                Algorithm::EdDsa
            ),
            Err(JwkError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            Jwk::from_better_auth_row(
                "9",
                &public_key(es256),
                Some("EdDSA"),
                None,
                Algorithm::EdDsa
            ),
            Err(JwkError::AlgorithmMismatch { .. })
        ));
    }

    #[test]
    fn kty_and_crv_must_fit_alg() {
        let cases = [
            (VECTORS[0].jwks, "ES256"),
            (VECTORS[1].jwks, "ES512"),
            (VECTORS[1].jwks, "EdDSA"),
            (VECTORS[2].jwks, "ES256"),
            (VECTORS[3].jwks, "ES256"),
            (VECTORS[1].jwks, "RS256"),
        ];
        for (jwks, alg) in cases {
            let mut jwk = entry(jwks);
            jwk["alg"] = json!(alg);
            let err = Jwk::from_json(&jwk).expect_err(alg);
            assert!(
                matches!(err, JwkError::AlgorithmMismatch { .. }),
                "{alg}: {err}"
            );
        }
        // Better Auth serves the configured `crv` on RSA keys too; jose ignores it there.
        for crv in [json!("P-256"), json!("Ed25519"), json!(7)] {
            let mut rsa_with_crv = entry(VECTORS[3].jwks);
            rsa_with_crv["crv"] = crv.clone();
            let key = Jwk::from_json(&rsa_with_crv).expect("crv is ignored on RSA keys");
            assert_eq!(key.algorithm(), Algorithm::Rs256, "{crv}");
        }
        let mut ed448 = entry(VECTORS[0].jwks);
        ed448["crv"] = json!("Ed448");
        ed448.as_object_mut().expect("object").remove("alg");
        assert!(matches!(
            Jwk::from_json(&ed448),
            Err(JwkError::UnsupportedKey { .. })
        ));
        let oct = json!({ "kty": "oct", "k": "c2VjcmV0", "kid": "h" });
        assert!(matches!(
            Jwk::from_json(&oct),
            Err(JwkError::UnsupportedKey { .. })
        ));
        let p384 = json!({ "kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p" });
        assert!(matches!(
            Jwk::from_json(&p384),
            Err(JwkError::UnsupportedKey { .. })
        ));
    }

    #[test]
    fn required_members() {
        assert!(matches!(
            Jwk::from_json(&json!([1])),
            Err(JwkError::NotAnObject)
        ));
        assert!(matches!(
            Jwk::from_json(&json!("k")),
            Err(JwkError::NotAnObject)
        ));
        for v in &VECTORS {
            let mut jwk = entry(v.jwks);
            jwk.as_object_mut().expect("object").remove("kid");
            assert!(matches!(Jwk::from_json(&jwk), Err(JwkError::MissingKid)));
            jwk["kid"] = json!(1);
            assert!(matches!(Jwk::from_json(&jwk), Err(JwkError::MissingKid)));
            let members: &[&str] = match v.alg {
                Algorithm::EdDsa => &["kty", "x"],
                Algorithm::Es256 | Algorithm::Es512 => &["kty", "x", "y"],
                Algorithm::Rs256 | Algorithm::Ps256 => &["kty", "n", "e"],
            };
            for &member in members {
                let mut jwk = entry(v.jwks);
                jwk.as_object_mut().expect("object").remove(member);
                let err = Jwk::from_json(&jwk).expect_err(member);
                assert!(
                    matches!(err, JwkError::BadMember { member: m, .. } if m == member),
                    "{member}: {err}"
                );
                jwk[member] = json!(42);
                assert!(Jwk::from_json(&jwk).is_err(), "{member} as a number");
            }
            let mut jwk = entry(v.jwks);
            jwk["alg"] = json!(256);
            assert!(matches!(
                Jwk::from_json(&jwk),
                Err(JwkError::BadMember { member: "alg", .. })
            ));
        }
    }

    #[test]
    fn key_material_is_checked() {
        // Coordinates of the wrong size, padded or in the standard alphabet.
        let ed = entry(VECTORS[0].jwks);
        let x = ed["x"].as_str().expect("x");
        for bad in [
            &x[1..],
            &format!("{x}A")[..],
            &format!("{x}=")[..],
            &x.replace('-', "+")[..],
            "",
        ] {
            let mut jwk = ed.clone();
            jwk["x"] = json!(bad);
            assert!(
                matches!(
                    Jwk::from_json(&jwk),
                    Err(JwkError::BadMember { member: "x", .. })
                ),
                "{bad}"
            );
        }
        // A small-order Ed25519 point (the identity).
        let mut weak = ed.clone();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        weak["x"] = json!(b64(&identity));
        assert!(matches!(
            Jwk::from_json(&weak),
            Err(JwkError::InvalidKey { .. })
        ));
        // EC points off the curve.
        for v in &VECTORS[1..3] {
            let mut jwk = entry(v.jwks);
            let mut y = URL_SAFE_NO_PAD
                .decode(jwk["y"].as_str().expect("y"))
                .expect("y");
            let last = y.len() - 1;
            y[last] ^= 1;
            jwk["y"] = json!(b64(&y));
            assert!(
                matches!(Jwk::from_json(&jwk), Err(JwkError::InvalidKey { .. })),
                "{}",
                v.alg
            );
            // A coordinate with its leading zero byte stripped (jose never does that).
            let mut jwk = entry(v.jwks);
            let x = URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().expect("x"))
                .expect("x");
            jwk["x"] = json!(b64(&x[1..]));
            assert!(
                matches!(
                    Jwk::from_json(&jwk),
                    Err(JwkError::BadMember { member: "x", .. })
                ),
                "{}",
                v.alg
            );
        }
    }

    #[test]
    fn rsa_sizes_and_exponents() {
        let f4 = [1, 0, 1];
        assert!(Jwk::from_json(&rsa_jwk(256, &f4)).is_ok(), "2048 bits");
        assert!(Jwk::from_json(&rsa_jwk(1024, &f4)).is_ok(), "8192 bits");
        assert!(Jwk::from_json(&rsa_jwk(512, &[3])).is_ok(), "e = 3");
        for (bytes, bits) in [(128, 1024), (255, 2040), (1025, 8200), (4096, 32768)] {
            assert!(
                matches!(Jwk::from_json(&rsa_jwk(bytes, &f4)), Err(JwkError::RsaModulusSize { bits: b, .. }) if b == bits),
                "{bits}"
            );
        }
        // A leading zero byte does not count.
        let mut jwk = rsa_jwk(256, &f4);
        let n = URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().expect("n"))
            .expect("n");
        jwk["n"] = json!(b64(&[&[0][..], &n].concat()));
        assert!(Jwk::from_json(&jwk).is_ok());
        for e in [
            &[][..],
            &[0],
            &[1],
            &[2],
            &[1, 0, 0],
            &[1, 0, 0, 0, 1],
            &[0xff; 9],
            &[1, 0, 0, 0, 0, 0, 0, 0, 1],
        ] {
            assert!(
                matches!(
                    Jwk::from_json(&rsa_jwk(256, e)),
                    Err(JwkError::RsaExponent { .. })
                ),
                "e = {e:?}"
            );
        }
        assert!(
            Jwk::from_json(&rsa_jwk(256, &[0xff, 0xff, 0xff, 0xff])).is_ok(),
            "2^32 - 1"
        );
        assert!(
            Jwk::from_json(&rsa_jwk(256, &[0, 0, 1, 0, 1])).is_ok(),
            "zero-padded 65537"
        );
        let mut even = rsa_jwk(256, &f4);
        let mut n = URL_SAFE_NO_PAD
            .decode(even["n"].as_str().expect("n"))
            .expect("n");
        n[255] = 0x02;
        even["n"] = json!(b64(&n));
        assert!(matches!(
            Jwk::from_json(&even),
            Err(JwkError::InvalidKey { .. })
        ));
    }

    #[test]
    fn usage_members_and_private_keys() {
        let base = entry(VECTORS[0].jwks);
        for (member, value, ok) in [
            ("use", json!("sig"), true),
            ("use", json!("enc"), false),
            ("use", json!(1), false),
            ("key_ops", json!(["verify"]), true),
            ("key_ops", json!(["sign", "verify"]), true),
            ("key_ops", json!(["encrypt"]), false),
            ("key_ops", json!([]), false),
            ("key_ops", json!("verify"), false),
        ] {
            let mut jwk = base.clone();
            jwk[member] = value.clone();
            assert_eq!(Jwk::from_json(&jwk).is_ok(), ok, "{member}: {value}");
        }
        // A private JWK still verifies; its private part is never kept or shown.
        let mut private = base.clone();
        private["d"] = json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
        let key = Jwk::from_json(&private).expect("private JWK");
        assert!(!format!("{key:?}").contains("nWGx"));
    }

    #[test]
    fn verify_uses_the_pinned_algorithm() {
        use super::super::token::parse;
        for v in &VECTORS {
            let key = Jwk::from_json(&entry(v.jwks)).expect("key");
            let parsed = parse(v.token).expect("vector");
            assert!(
                key.verify(parsed.signing_input, &parsed.signature),
                "{}",
                v.alg
            );
            assert!(!key.verify(b"other input", &parsed.signature), "{}", v.alg);
        }
        // The RS256 signature does not pass as PS256 with the same modulus, and vice versa.
        for (token_of, key_of, alg) in [(3, 3, "PS256"), (4, 4, "RS256")] {
            let mut jwk = entry(VECTORS[key_of].jwks);
            jwk["alg"] = json!(alg);
            let key = Jwk::from_json(&jwk).expect("re-pinned");
            let parsed = parse(VECTORS[token_of].token).expect("vector");
            assert!(
                !key.verify(parsed.signing_input, &parsed.signature),
                "{alg}"
            );
        }
    }

    #[test]
    fn jwk_sets() {
        let doc = json!({ "keys": [
            entry(VECTORS[0].jwks),
            { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" },
            entry(VECTORS[3].jwks),
            { "kty": "RSA", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB", "kid": "enc" },
            { "kty": "OKP", "crv": "X25519", "x": "AA", "kid": "x25519" },
            { "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA" },
            "not a key",
            { "alg": "EdDSA", "crv": "Ed25519", "kty": "OKP", "use": "enc",
              "x": entry(VECTORS[0].jwks)["x"], "kid": "encryption" },
            entry(TOKEN_ENDPOINT.jwks),
            // A second key under the first kid: ignored.
            { "alg": "ES256", "crv": "P-256", "kty": "EC", "kid": VECTORS[0].kid,
              "x": entry(VECTORS[1].jwks)["x"], "y": entry(VECTORS[1].jwks)["y"] },
        ]});
        let set = JwkSet::from_json(doc.to_string().as_bytes()).expect("JWKS");
        assert_eq!(set.len(), 3);
        assert!(!set.is_empty());
        let kids: Vec<_> = set.iter().map(Jwk::kid).collect();
        assert_eq!(kids, [VECTORS[0].kid, VECTORS[3].kid, TOKEN_ENDPOINT.kid]);
        assert_eq!(
            set.get(VECTORS[0].kid).map(Jwk::algorithm),
            Some(Algorithm::EdDsa)
        );
        assert!(set.get("hmac").is_none());
        assert_eq!((&set).into_iter().count(), 3);
        assert!(format!("{set:?}").len() < 400);

        let empty = JwkSet::from_json(br#"{"keys":[]}"#).expect("empty JWKS");
        assert!(empty.is_empty() && empty.get("x").is_none());

        assert!(matches!(
            JwkSet::from_json(b"not json"),
            Err(JwkError::JwksJson { .. })
        ));
        assert!(matches!(
            JwkSet::from_json(b""),
            Err(JwkError::JwksJson { .. })
        ));
        for body in [
            &b"[]"[..],
            b"{}",
            br#"{"keys":{}}"#,
            br#"{"keys":null}"#,
            b"null",
            br#""keys""#,
        ] {
            assert!(
                matches!(JwkSet::from_json(body), Err(JwkError::NotAJwks { .. })),
                "{body:?}"
            );
        }

        let keys: Vec<Jwk> = [VECTORS[1].jwks, VECTORS[2].jwks, VECTORS[1].jwks]
            .into_iter()
            .map(|jwks| Jwk::from_json(&entry(jwks)).expect("key"))
            .collect();
        let set = JwkSet::from_keys(keys);
        assert_eq!(set.len(), 2);
        assert_eq!(
            set.get(VECTORS[2].kid).map(Jwk::algorithm),
            Some(Algorithm::Es512)
        );
        assert!(JwkSet::default().is_empty());
    }

    #[test]
    fn error_messages_say_what_works() {
        let err = Jwk::from_json(&{
            let mut jwk = entry(VECTORS[3].jwks);
            jwk.as_object_mut().expect("object").remove("alg");
            jwk
        })
        .expect_err("ambiguous");
        assert!(err.to_string().contains("RS256 or PS256"), "{err}");
        let err = Jwk::from_json(&rsa_jwk(128, &[1, 0, 1])).expect_err("small");
        assert!(
            err.to_string().contains("1024-bit") && err.to_string().contains("2048"),
            "{err}"
        );
        let mut jwk = entry(VECTORS[1].jwks);
        jwk["alg"] = json!("ES512");
        let err = Jwk::from_json(&jwk).expect_err("mismatch");
        assert!(err.to_string().contains(r#"crv "P-521""#), "{err}");
    }
}
