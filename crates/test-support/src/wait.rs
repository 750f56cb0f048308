//! Waiting for the event a test means, never for a length of time.
//!
//! A test that sleeps "long enough" fails on a busy machine; a test that waits for an event
//! with a short deadline does too. These wait for the event itself, with one generous bound so
//! that a real hang still ends as a failure that names what never happened.

use std::future::Future;
use std::time::Duration;

/// How long a test waits for something that normally takes milliseconds, before it calls it a
/// hang. Only a failing test ever waits this long.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// `fut`'s output; panics naming `what` if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("waited {PATIENCE:?} for {what}"),
    }
}

/// Checks `check` again and again (a few milliseconds apart) until it yields a value, for up to
/// [`PATIENCE`]; for conditions nothing announces, such as a metric another task updates.
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}
