//! Join tokens: HS256 JWTs (jsonwebtoken crate) whose claims give room, name, role and expiry.
//! Without a secret the server runs in open mode and takes roles as asked.

use crate::protocol::{Role, RoomMode};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a join token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The one room it admits to.
    pub room: String,
    /// Display name.
    pub name: String,
    /// Role in that room.
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Identity across reconnects (defaults to the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Meeting or webinar, if this token's join opens the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RoomMode>,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No token, but the server requires one.
    #[error("This server needs a join token; ask the host for a link.")]
    Missing,
    /// Expired.
    #[error("The join token has expired; ask the host for a new link.")]
    Expired,
    /// For another room.
    #[error("The join token is for another room.")]
    WrongRoom,
    /// Bad signature, malformed, wrong algorithm.
    #[error("The join token is not valid.")]
    Invalid,
}

/// The token checker.
#[derive(Clone)]
pub struct Auth {
    secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Auth")
            .field("open", &self.secret.is_none())
            .finish()
    }
}

impl Auth {
    /// Open mode when `secret` is `None`.
    pub fn new(secret: Option<&str>) -> Self {
        Auth {
            secret: secret
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec()),
        }
    }

    /// Whether joins need tokens.
    pub fn required(&self) -> bool {
        self.secret.is_some()
    }

    /// Checks a token for `room`. `Ok(None)` in open mode.
    pub fn verify(&self, token: Option<&str>, room: &str) -> Result<Option<Claims>, AuthError> {
        let Some(secret) = &self.secret else {
            return Ok(None);
        };
        let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp"]);
        let data = decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        if data.claims.room != room {
            return Err(AuthError::WrongRoom);
        }
        Ok(Some(data.claims))
    }

    /// Signs claims (for `confab token` and tests).
    pub fn issue(&self, claims: &Claims) -> Option<String> {
        let secret = self.secret.as_ref()?;
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .ok()
    }
}

/// Seconds since the Unix epoch (for expiries; the shell's clock, not the core's).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(room: &str, exp: u64) -> Claims {
        Claims {
            room: room.into(),
            name: "Ana".into(),
            role: Role::Host,
            exp,
            sub: None,
            mode: None,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let auth = Auth::new(Some("s3cret"));
        let token = auth.issue(&claims("r", unix_now() + 60)).expect("signs");
        assert_eq!(
            auth.verify(Some(&token), "r")
                .expect("valid")
                .map(|c| c.role),
            Some(Role::Host)
        );
        assert_eq!(
            auth.verify(Some(&token), "other"),
            Err(AuthError::WrongRoom)
        );
        assert_eq!(auth.verify(None, "r"), Err(AuthError::Missing));
        assert_eq!(auth.verify(Some("a.b.c"), "r"), Err(AuthError::Invalid));
        let old = auth.issue(&claims("r", unix_now() - 3600)).expect("signs");
        assert_eq!(auth.verify(Some(&old), "r"), Err(AuthError::Expired));
        let forged = Auth::new(Some("other"))
            .issue(&claims("r", unix_now() + 60))
            .expect("signs");
        assert_eq!(auth.verify(Some(&forged), "r"), Err(AuthError::Invalid));
    }

    #[test]
    fn open_mode_needs_nothing() {
        let auth = Auth::new(None);
        assert!(!auth.required());
        assert_eq!(auth.verify(None, "r"), Ok(None));
        assert!(auth.issue(&claims("r", 1)).is_none());
    }
}
