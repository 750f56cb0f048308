//! Test support: issue 12, item 18 — every request or form that carries a password, code or
//! token shows none of it in `Debug` (a log line, a panic message).

#![allow(clippy::unwrap_used)]

/// Parses `fields` as `T` and checks that its `Debug` shows none of the values that start with
/// `SENTINEL`, and says it redacted something.
pub(crate) fn assert_redacted<T: serde::de::DeserializeOwned + std::fmt::Debug>(fields: serde_json::Value) {
    let parsed: T = serde_json::from_value(fields.clone()).unwrap();
    let shown = format!("{parsed:?}");
    for (name, value) in fields.as_object().unwrap() {
        let value = value.as_str().unwrap();
        if value.starts_with("SENTINEL") {
            assert!(!shown.contains(value), "{} shows its {name}: {shown}", std::any::type_name::<T>());
        }
    }
    assert!(shown.contains("redacted"), "{shown}");
}
