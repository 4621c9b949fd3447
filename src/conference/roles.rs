//! What each role may do: a fixed set of permissions per role, checked by the server.

use crate::protocol::Role;

/// One thing a participant may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Send camera, microphone or screen.
    Publish,
    /// Receive the stage.
    Subscribe,
    /// Write in the room chat.
    Chat,
    /// Ask and upvote questions, raise a hand.
    Ask,
    /// Change roles, mute, remove, lock, admit, end, close questions.
    Moderate,
}

/// Whether `role` has `permission`.
pub fn allows(role: Role, permission: Permission) -> bool {
    use Permission::*;
    match role {
        Role::Host => true,
        Role::Presenter => matches!(permission, Publish | Subscribe | Chat | Ask),
        Role::Audience => matches!(permission, Subscribe | Chat | Ask),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_table() {
        assert!(allows(Role::Host, Permission::Moderate));
        assert!(!allows(Role::Presenter, Permission::Moderate));
        assert!(allows(Role::Presenter, Permission::Publish));
        assert!(!allows(Role::Audience, Permission::Publish));
        assert!(allows(Role::Audience, Permission::Ask));
        assert!(allows(Role::Audience, Permission::Subscribe));
        // The media room's publish check agrees with the table.
        for r in [Role::Host, Role::Presenter, Role::Audience] {
            assert_eq!(r.may_publish(), allows(r, Permission::Publish));
        }
    }
}
