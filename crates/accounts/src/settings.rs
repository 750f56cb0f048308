//! The platform's settings: its time zone, and the session and lockout policy; admins read and
//! change them, each change recorded with its old and new values.

use std::time::Duration;

use logbook_core::Action;
use logbook_store::AccountMutation;
use serde::{Deserialize, Serialize};

use crate::events::event;
use crate::permission::{Authorized, ManageSettings};
use crate::{AccountError, Accounts};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PlatformSettings {
    /// IANA time zone name; the audit log shows times in it.
    pub time_zone: String,
    /// A session ends after this long without a request.
    pub session_idle_minutes: u32,
    /// A session ends this long after sign-in, whatever the activity.
    pub session_absolute_hours: u32,
    /// Consecutive failed sign-ins that lock an account.
    pub lockout_threshold: u32,
    pub lockout_minutes: u32,
}

impl Default for PlatformSettings {
    fn default() -> Self {
        Self {
            time_zone: "UTC".into(),
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            lockout_threshold: 10,
            lockout_minutes: 30,
        }
    }
}

/// A change: only the fields present are changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub time_zone: Option<String>,
    pub session_idle_minutes: Option<u32>,
    pub session_absolute_hours: Option<u32>,
    pub lockout_threshold: Option<u32>,
    pub lockout_minutes: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("unknown time zone {0:?} (use an IANA name such as Europe/Berlin)")]
    TimeZone(String),
    #[error("{field} must be between {min} and {max}")]
    Range { field: &'static str, min: u32, max: u32 },
}

fn in_range(field: &'static str, v: u32, min: u32, max: u32) -> Result<(), SettingsError> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(SettingsError::Range { field, min, max })
    }
}

/// One changed setting: (field, old value, new value).
pub type Change = (&'static str, String, String);

impl PlatformSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if jiff::tz::TimeZone::get(&self.time_zone).is_err() {
            return Err(SettingsError::TimeZone(self.time_zone.chars().take(64).collect()));
        }
        in_range("session_idle_minutes", self.session_idle_minutes, 1, 24 * 60)?;
        in_range("session_absolute_hours", self.session_absolute_hours, 1, 24 * 30)?;
        in_range("lockout_threshold", self.lockout_threshold, 1, 1000)?;
        in_range("lockout_minutes", self.lockout_minutes, 1, 24 * 60)?;
        Ok(())
    }

    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.time_zone).unwrap_or(jiff::tz::TimeZone::UTC)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.session_idle_minutes) * 60)
    }

    pub fn absolute_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.session_absolute_hours) * 3600)
    }

    pub fn lockout(&self) -> Duration {
        Duration::from_secs(u64::from(self.lockout_minutes) * 60)
    }

    /// The settings with `patch` applied (validated), and what changed.
    pub fn apply(&self, patch: &SettingsPatch) -> Result<(Self, Vec<Change>), SettingsError> {
        let mut next = self.clone();
        let mut changes = Vec::new();
        macro_rules! field {
            ($name:ident) => {
                if let Some(v) = &patch.$name {
                    if *v != self.$name {
                        changes.push((stringify!($name), self.$name.to_string(), v.to_string()));
                        next.$name = v.clone();
                    }
                }
            };
        }
        field!(time_zone);
        field!(session_idle_minutes);
        field!(session_absolute_hours);
        field!(lockout_threshold);
        field!(lockout_minutes);
        next.validate()?;
        Ok((next, changes))
    }
}

impl Accounts {
    pub async fn get_settings(&self, _: &Authorized<ManageSettings>) -> Result<PlatformSettings, AccountError> {
        self.settings().await
    }

    pub async fn update_settings(
        &self,
        by: &Authorized<ManageSettings>,
        patch: &SettingsPatch,
    ) -> Result<PlatformSettings, AccountError> {
        self.forget_settings();
        let current = self.settings().await?;
        let (next, changes) = current.apply(patch)?;
        if changes.is_empty() {
            return Ok(current);
        }
        let details: Vec<String> =
            changes.iter().map(|(f, old, new)| format!("{f} changed from {old} to {new}")).collect();
        let mut b = event(Action::SettingsUpdated, by.actor(), &by.source)
            .target("settings", "platform", "Platform settings")
            .details(details.join("; "));
        for (f, old, new) in &changes {
            b = b.field(&format!("old.{f}"), old).field(&format!("new.{f}"), new);
        }
        let json = serde_json::to_string(&next).map_err(|e| AccountError::Internal(e.to_string()))?;
        self.append(vec![b.build()], AccountMutation::PutSettings { json }).await?;
        self.forget_settings();
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_documented_policy() {
        let d = PlatformSettings::default();
        d.validate().unwrap();
        assert_eq!((d.idle_timeout().as_secs(), d.absolute_timeout().as_secs()), (1800, 12 * 3600));
        assert_eq!((d.lockout_threshold, d.lockout().as_secs()), (10, 1800));
    }

    #[test]
    fn patches_are_validated_and_report_their_changes() {
        let d = PlatformSettings::default();
        let patch = SettingsPatch {
            time_zone: Some("Europe/Berlin".into()),
            lockout_threshold: Some(10),
            ..Default::default()
        };
        let (next, changes) = d.apply(&patch).unwrap();
        assert_eq!(next.time_zone, "Europe/Berlin");
        assert_eq!(
            changes,
            vec![("time_zone", "UTC".to_string(), "Europe/Berlin".to_string())],
            "unchanged values are not reported"
        );
        let bad = SettingsPatch { time_zone: Some("Mars/Olympus".into()), ..Default::default() };
        assert!(matches!(d.apply(&bad), Err(SettingsError::TimeZone(_))));
        let bad = SettingsPatch { session_idle_minutes: Some(0), ..Default::default() };
        assert!(matches!(d.apply(&bad), Err(SettingsError::Range { field: "session_idle_minutes", .. })));
        assert!(serde_json::from_str::<SettingsPatch>(r#"{"timezone":"UTC"}"#).is_err(), "typos are refused");
    }
}
