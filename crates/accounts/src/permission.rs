//! Authorization in types.
//!
//! A [`Caller`] is who a request's session belongs to, with the role read from the database on
//! this very request (so a role change bites at once). Every operation of the accounts service
//! that needs a permission takes an [`Authorized<P>`], and the only way to get one is
//! [`Caller::authorize`], which checks the role: an admin-only operation cannot be reached
//! without the check.

use std::fmt;
use std::marker::PhantomData;

use logbook_core::{Actor, ActorKind, Role, Source, UserId};

/// A permission. Which roles hold it is written once, here.
pub trait Permission: Send + Sync + 'static {
    /// For error messages: "… requires permission to {NAME}".
    const NAME: &'static str;
    fn granted_to(role: Role) -> bool;
}

macro_rules! permission {
    ($(#[$doc:meta])* $name:ident, $text:literal, $($role:ident)|+) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl Permission for $name {
            const NAME: &'static str = $text;
            fn granted_to(role: Role) -> bool {
                matches!(role, $(Role::$role)|+)
            }
        }
    };
}

permission!(
    /// Search, open and export the audit log.
    ReadAuditLog, "read the audit log", Admin | Analyst | Auditor
);
permission!(
    /// See the management users and invitations.
    ReadUsers, "read the list of management users", Admin | Auditor
);
permission!(
    /// See the protected users.
    ReadProtectedUsers, "read the list of protected users", Admin | Analyst | Auditor
);
permission!(
    /// Add, remove and import protected users.
    ManageProtectedUsers, "manage protected users", Admin | Analyst
);
permission!(
    /// Invite, add, change the role of and delete management users.
    ManageUsers, "manage management users", Admin
);
permission!(
    /// Read and change the platform's settings.
    ManageSettings, "manage settings", Admin
);
permission!(
    /// See, create and revoke the API tokens services record with, and choose what each may
    /// record.
    ManageApiTokens, "manage API tokens", Admin
);

permission!(
    /// Change one's own password and TOTP (every role).
    OwnAccount, "manage your own account", Admin | Analyst | Auditor
);

/// The signed-in user behind a request.
#[derive(Clone)]
pub struct Caller {
    pub(crate) user: UserId,
    pub(crate) email: String,
    pub(crate) role: Role,
    pub(crate) totp_enrolled: bool,
    pub(crate) session: [u8; 32],
    pub(crate) source: Source,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("user", &self.user)
            .field("email", &self.email)
            .field("role", &self.role)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("your role does not allow you to {0}")]
pub struct Forbidden(pub &'static str);

impl Caller {
    pub fn user(&self) -> UserId {
        self.user
    }

    pub fn email(&self) -> &str {
        &self.email
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn totp_enrolled(&self) -> bool {
        self.totp_enrolled
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The hash of the session's token (never the token itself).
    pub fn session_hash(&self) -> &[u8; 32] {
        &self.session
    }

    /// The actor of the events this caller causes.
    pub fn actor(&self) -> Actor {
        Actor { kind: ActorKind::User, id: self.user.to_string(), email: Some(self.email.clone()) }
    }

    pub fn may<P: Permission>(&self) -> bool {
        P::granted_to(self.role)
    }

    /// The one way to obtain an [`Authorized<P>`].
    pub fn authorize<P: Permission>(self) -> Result<Authorized<P>, Forbidden> {
        if P::granted_to(self.role) {
            Ok(Authorized { caller: self, permission: PhantomData })
        } else {
            Err(Forbidden(P::NAME))
        }
    }
}

/// Proof that the caller holds permission `P` (checked against the role of this request).
pub struct Authorized<P> {
    caller: Caller,
    permission: PhantomData<P>,
}

impl<P> fmt::Debug for Authorized<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorized")
            .field("caller", &self.caller)
            .field("permission", &std::any::type_name::<P>())
            .finish()
    }
}

impl<P> std::ops::Deref for Authorized<P> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<P> Authorized<P> {
    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role) -> Caller {
        Caller {
            user: UserId(1),
            email: "a@example.com".into(),
            role,
            totp_enrolled: false,
            session: [0; 32],
            source: Source::default(),
        }
    }

    #[test]
    fn roles_hold_exactly_their_permissions() {
        let table: [(Role, [bool; 6]); 3] = [
            (Role::Admin, [true, true, true, true, true, true]),
            (Role::Analyst, [true, false, true, true, false, false]),
            (Role::Auditor, [true, true, true, false, false, false]),
        ];
        for (role, expected) in table {
            let c = caller(role);
            let got = [
                c.may::<ReadAuditLog>(),
                c.may::<ReadUsers>(),
                c.may::<ReadProtectedUsers>(),
                c.may::<ManageProtectedUsers>(),
                c.may::<ManageUsers>(),
                c.may::<ManageSettings>(),
            ];
            assert_eq!(got, expected, "{role:?}");
        }
        assert_eq!(caller(Role::Auditor).authorize::<ManageUsers>().unwrap_err(), Forbidden("manage management users"));
    }
}
