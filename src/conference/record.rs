//! A room's lasting record: mode, password, lock, bans and keys, kept from creation until expiry.
//!
//! The record outlives the room's task: when the last participant leaves, the registry keeps it
//! (dormant) until it expires, so a removed identity cannot rejoin by waiting for the room to
//! empty, and a host link keeps working. Sans-IO: the caller passes `now`.

use crate::model::{Role, RoomMode};
use rand::RngCore;
use std::collections::HashSet;
use std::time::Instant;

/// Most identities one room bans; a host removing more is told so (memory stays bounded).
pub const MAX_BANS: usize = 1000;

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 128;

/// An unguessable key (128 random bits, hex): whoever holds it has the rights it stands for.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// A fresh random key.
    pub fn random() -> Key {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        Key(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A key given by the operator (the API key), to compare like the others.
    pub fn from_secret(secret: &str) -> Key {
        Key(secret.to_string())
    }

    /// The key as it goes into a link.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this key, compared in time independent of where they differ.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a key.
        f.write_str("Key(…)")
    }
}

/// How a room came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// "New meeting", `confab room create` or the room API: made before anyone joined.
    Created,
    /// Opened by typing a name that did not exist (open mode, when ad-hoc rooms are allowed),
    /// or by the first token holder (token mode).
    AdHoc,
}

/// What a joiner brings that may grant rights.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The role its verified token gives (token mode).
    pub token_role: Option<Role>,
    /// A key from a host or presenter link.
    pub key: Option<String>,
    /// The role asked for in the link or join message; only ever lowers the granted role, and
    /// only without a token.
    pub asked: Option<Role>,
}

/// A room's lasting settings and secrets.
#[derive(Debug, Clone)]
pub struct RoomRecord {
    /// Meeting or webinar.
    pub mode: RoomMode,
    /// The password non-hosts must give, if any.
    pub password: Option<String>,
    /// Whether newcomers wait in the lobby.
    pub locked: bool,
    /// Identities a host removed: refused for the record's life.
    pub banned: HashSet<String>,
    /// Grants host.
    pub host_key: Key,
    /// Grants presenter (a webinar's panelists).
    pub presenter_key: Key,
    /// How it began.
    pub origin: Origin,
    /// Whether a host has decided mode and password yet (an ad-hoc room opened by a non-host
    /// token is not configured until a host joins).
    pub configured: bool,
    /// When the last participant left; `None` while anyone is in (or it was never used).
    pub emptied_at: Option<Instant>,
    /// When it was made.
    pub created_at: Instant,
    /// Others already in from which a joiner starts with the microphone off (none: never).
    pub join_muted_above: Option<u32>,
}

impl RoomRecord {
    /// A new record with fresh keys.
    pub fn new(mode: RoomMode, origin: Origin, now: Instant) -> RoomRecord {
        RoomRecord {
            mode,
            password: None,
            locked: false,
            banned: HashSet::new(),
            host_key: Key::random(),
            presenter_key: Key::random(),
            origin,
            configured: origin == Origin::Created,
            emptied_at: None,
            created_at: now,
            join_muted_above: Some(crate::protocol::host::DEFAULT_JOIN_MUTED_ABOVE),
        }
    }

    /// Whether the record may be forgotten at `now`: empty for longer than `ttl`, or created
    /// and never used for longer than `ttl`.
    pub fn expired(&self, now: Instant, ttl: std::time::Duration, occupied: bool) -> bool {
        if occupied {
            return false;
        }
        let since = self.emptied_at.unwrap_or(self.created_at);
        now.saturating_duration_since(since) >= ttl
    }

    /// The role a joiner gets: a host token or the host key gives host; a presenter token or
    /// the presenter key gives presenter; everyone else gets the mode's default. Without a
    /// token, an asked role is honoured only when it is lower than that (a presenter may
    /// choose to watch); a token's role stands as issued.
    pub fn grant(&self, c: &Credentials) -> Role {
        let by_key = c.key.as_deref().and_then(|k| {
            if self.host_key.matches(k) {
                Some(Role::Host)
            } else if self.presenter_key.matches(k) {
                Some(Role::Presenter)
            } else {
                None
            }
        });
        let granted = match (c.token_role, by_key) {
            (Some(t), Some(k)) => higher(t, k),
            (Some(t), None) => t,
            (None, Some(k)) => k,
            (None, None) => self.mode.default_role(),
        };
        match c.asked {
            Some(asked) if c.token_role.is_none() && rank(asked) < rank(granted) => asked,
            _ => granted,
        }
    }

    /// Sets or removes the password; empty removes. Refuses overlong ones.
    pub fn set_password(&mut self, password: Option<String>) -> Result<(), &'static str> {
        let password = password.filter(|p| !p.is_empty());
        if password
            .as_ref()
            .is_some_and(|p| p.len() > MAX_PASSWORD_BYTES)
        {
            return Err("Passwords are at most 128 bytes.");
        }
        self.password = password;
        Ok(())
    }

    /// Bans an identity for the record's life.
    pub fn ban(&mut self, identity: &str) -> bool {
        if self.banned.len() >= MAX_BANS {
            return false;
        }
        self.banned.insert(identity.to_string());
        true
    }

    /// Whether `given` opens the password (or there is none).
    pub fn password_ok(&self, given: Option<&str>) -> bool {
        match &self.password {
            None => true,
            Some(p) => given.is_some_and(|g| {
                // Compared like keys: in time independent of where they differ.
                Key::from_secret(p).matches(g)
            }),
        }
    }
}

fn rank(r: Role) -> u8 {
    match r {
        Role::Audience => 0,
        Role::Presenter => 1,
        Role::Host => 2,
    }
}

fn higher(a: Role, b: Role) -> Role {
    if rank(a) >= rank(b) {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(mode: RoomMode) -> RoomRecord {
        RoomRecord::new(mode, Origin::Created, Instant::now())
    }

    #[test]
    fn asking_for_host_grants_nothing() {
        let r = rec(RoomMode::Meeting);
        let asked = Credentials {
            asked: Some(Role::Host),
            ..Default::default()
        };
        assert_eq!(r.grant(&asked), Role::Presenter);
        let w = rec(RoomMode::Webinar);
        let asked = Credentials {
            asked: Some(Role::Presenter),
            ..Default::default()
        };
        assert_eq!(w.grant(&asked), Role::Audience);
    }

    #[test]
    fn keys_grant_their_role_and_only_in_their_room() {
        let r = rec(RoomMode::Webinar);
        let other = rec(RoomMode::Webinar);
        let with = |k: &Key| Credentials {
            key: Some(k.as_str().to_string()),
            ..Default::default()
        };
        assert_eq!(r.grant(&with(&r.host_key)), Role::Host);
        assert_eq!(r.grant(&with(&r.presenter_key)), Role::Presenter);
        assert_eq!(r.grant(&with(&other.host_key)), Role::Audience);
        let lower = Credentials {
            asked: Some(Role::Audience),
            ..with(&r.host_key)
        };
        assert_eq!(r.grant(&lower), Role::Audience);
    }

    #[test]
    fn token_roles_stand() {
        let r = rec(RoomMode::Meeting);
        let c = Credentials {
            token_role: Some(Role::Audience),
            asked: Some(Role::Host),
            ..Default::default()
        };
        assert_eq!(r.grant(&c), Role::Audience);
    }

    #[test]
    fn keys_compare_exactly_and_never_print() {
        let k = Key::random();
        assert_eq!(k.as_str().len(), 32);
        assert!(k.matches(k.as_str()));
        assert!(!k.matches(&k.as_str()[..31]));
        assert!(!k.matches(""));
        assert_ne!(Key::random().as_str(), k.as_str());
        assert_eq!(format!("{k:?}"), "Key(…)");
    }

    #[test]
    fn expiry_counts_from_emptying() {
        let t0 = Instant::now();
        let ttl = std::time::Duration::from_secs(10);
        let mut r = RoomRecord::new(RoomMode::Meeting, Origin::AdHoc, t0);
        assert!(!r.expired(t0 + ttl * 2, ttl, true));
        r.emptied_at = Some(t0 + ttl);
        assert!(!r.expired(t0 + ttl + ttl / 2, ttl, false));
        assert!(r.expired(t0 + ttl * 2, ttl, false));
    }
}
