use std::fmt;

use parking_lot::Mutex;
use rand::{RngCore, SeedableRng};

/// The source of randomness for identifiers, tokens and keys. Passed in so tests can make it
/// deterministic; production uses the operating system's generator.
pub trait Random: Send + Sync + fmt::Debug + 'static {
    fn fill(&self, dest: &mut [u8]);

    fn bytes<const N: usize>(&self) -> [u8; N]
    where
        Self: Sized,
    {
        let mut b = [0u8; N];
        self.fill(&mut b);
        b
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, dest: &mut [u8]) {
        rand::rngs::OsRng.fill_bytes(dest);
    }
}

/// Deterministic randomness for tests. Never use it for real secrets.
pub struct SeededRandom(Mutex<rand_chacha::ChaCha20Rng>);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(rand_chacha::ChaCha20Rng::seed_from_u64(seed)))
    }
}

impl fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeededRandom")
    }
}

impl Random for SeededRandom {
    fn fill(&self, dest: &mut [u8]) {
        self.0.lock().fill_bytes(dest);
    }
}

impl Random for std::sync::Arc<dyn Random> {
    fn fill(&self, dest: &mut [u8]) {
        (**self).fill(dest)
    }
}
