//! The wire format of C2SP tlog-witness: what a log sends to `POST <witness>/add-checkpoint` and
//! what the witness answers.
//!
//! Request body:
//!
//! ```text
//! old 20852014                                       <- the size the log thinks the witness has
//! PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=       <- consistency proof, one hash a line
//! jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=          (none when old is 0; at most 63)
//!                                                    <- empty line
//! example.com/log                                    <- the signed checkpoint note
//! 20852163
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//!
//! — example.com/log Az3grl…
//! ```
//!
//! Answers: 200 with cosignature lines (`text/plain`); 409 with the size the witness holds
//! (`text/x.tlog.size`, the decimal size and a newline); 400, 403, 404, 422 without a body the
//! client has to read.

use base64::Engine as _;

use crate::{Hash, HASH_SIZE};

/// The path of the call, after the witness's URL prefix.
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";
/// The content type of a 409 answer: the witness's size in decimal and a newline.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// The content type of a 200 answer (cosignature lines).
pub const COSIGNATURES_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// The most consistency proof lines a request may carry (the spec's limit: a proof between two
/// trees of at most 2^64 leaves needs fewer).
pub const MAX_PROOF_LINES: usize = 63;
/// The largest request body taken: 63 proof lines are under 3 KiB, and a checkpoint note with
/// its signatures a few KiB more; this leaves room for many cosignature lines.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessProtocolError {
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("the body is not UTF-8")]
    NotUtf8,
    #[error("the first line must be `old <size>` in decimal without leading zeroes")]
    BadOldSize,
    #[error("a consistency proof line is not one base64 hash")]
    BadProofLine,
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    TooManyProofLines,
    #[error("a consistency proof was sent with old size 0")]
    ProofFromZero,
    #[error("no empty line before the checkpoint")]
    MissingSeparator,
    #[error("no checkpoint after the empty line")]
    MissingCheckpoint,
    #[error("a size answer must be a decimal size and a newline")]
    BadSize,
    #[error("a cosignature answer must be one or more signature lines")]
    BadCosignatureLines,
}

/// One `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq)]
pub struct AddCheckpointRequest {
    /// The size of the checkpoint the log believes the witness last cosigned (0 at first).
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size (empty when `old_size`
    /// is 0 or equal to the checkpoint's size).
    pub proof: Vec<Hash>,
    /// The whole signed checkpoint note, ending with a newline.
    pub checkpoint: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl AddCheckpointRequest {
    /// The request body.
    pub fn to_body(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for h in &self.proof {
            out.push_str(&b64().encode(h.0));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses a request body strictly: sizes in canonical decimal, each proof line exactly one
    /// canonically encoded hash, at most [`MAX_PROOF_LINES`], no proof from size 0, at most
    /// [`MAX_BODY_BYTES`]. The checkpoint is returned as sent; its signature and content are
    /// the caller's to check.
    pub fn parse(body: &[u8]) -> Result<Self, WitnessProtocolError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(WitnessProtocolError::TooLarge);
        }
        let text = std::str::from_utf8(body).map_err(|_| WitnessProtocolError::NotUtf8)?;
        let (first, mut rest) = text.split_once('\n').ok_or(WitnessProtocolError::BadOldSize)?;
        let old_size = first.strip_prefix("old ").and_then(parse_decimal).ok_or(WitnessProtocolError::BadOldSize)?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n').ok_or(WitnessProtocolError::MissingSeparator)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(WitnessProtocolError::TooManyProofLines);
            }
            proof.push(parse_hash(line).ok_or(WitnessProtocolError::BadProofLine)?);
        }
        if old_size == 0 && !proof.is_empty() {
            return Err(WitnessProtocolError::ProofFromZero);
        }
        if rest.is_empty() {
            return Err(WitnessProtocolError::MissingCheckpoint);
        }
        Ok(Self { old_size, proof, checkpoint: rest.to_owned() })
    }
}

/// A size in ASCII decimal with no leading zeroes (`0` itself excepted) that fits in a u64.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// One hash in canonical standard base64 (44 characters, padded).
fn parse_hash(line: &str) -> Option<Hash> {
    let raw = b64().decode(line).ok()?;
    let h: [u8; HASH_SIZE] = raw.try_into().ok()?;
    // The decoder accepts non-zero trailing bits; only the canonical form is taken.
    (b64().encode(h) == line).then_some(Hash(h))
}

/// The body of a 409 answer for a witness holding `size`.
pub fn size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Reads the body of a 409 answer: the witness's size in decimal and a newline (a missing final
/// newline is forgiven).
pub fn parse_size_body(body: &[u8]) -> Result<u64, WitnessProtocolError> {
    let text = std::str::from_utf8(body).map_err(|_| WitnessProtocolError::BadSize)?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    parse_decimal(text).ok_or(WitnessProtocolError::BadSize)
}

/// The signature lines of a 200 answer, each without its newline. Every line must start with
/// `— ` (U+2014 and a space); an empty answer is an error.
pub fn cosignature_lines(body: &str) -> Result<Vec<&str>, WitnessProtocolError> {
    let body = body.strip_suffix('\n').ok_or(WitnessProtocolError::BadCosignatureLines)?;
    let lines: Vec<&str> = body.split('\n').collect();
    if lines.iter().all(|l| l.starts_with("\u{2014} ") && l.len() > 4) {
        Ok(lines)
    } else {
        Err(WitnessProtocolError::BadCosignatureLines)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const NOTE: &str = "example.com/log\n3\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/log Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";

    fn hash(b: u8) -> Hash {
        Hash([b; 32])
    }

    #[test]
    fn a_request_round_trips_and_matches_the_spec_layout() {
        let req = AddCheckpointRequest { old_size: 2, proof: vec![hash(1), hash(2)], checkpoint: NOTE.into() };
        let body = req.to_body();
        let want = format!("old 2\n{}\n{}\n\n{NOTE}", b64().encode([1u8; 32]), b64().encode([2u8; 32]));
        assert_eq!(body, want);
        assert_eq!(AddCheckpointRequest::parse(body.as_bytes()).unwrap(), req);

        let first = AddCheckpointRequest { old_size: 0, proof: vec![], checkpoint: NOTE.into() };
        assert_eq!(first.to_body(), format!("old 0\n\n{NOTE}"));
        assert_eq!(AddCheckpointRequest::parse(first.to_body().as_bytes()).unwrap(), first);
    }

    #[test]
    fn the_spec_example_parses() {
        let body = "old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\n"
            .to_owned()
            + NOTE;
        let req = AddCheckpointRequest::parse(body.as_bytes()).unwrap();
        assert_eq!(req.old_size, 20_852_014);
        assert_eq!(req.proof.len(), 4);
        assert_eq!(req.checkpoint, NOTE);
        assert_eq!(req.to_body(), body);
    }

    #[test]
    fn malformed_bodies_are_refused_with_what_is_wrong() {
        use WitnessProtocolError::*;
        let h = b64().encode([7u8; 32]);
        let cases: Vec<(String, WitnessProtocolError)> = vec![
            (format!("old 01\n\n{NOTE}"), BadOldSize),
            (format!("old -1\n\n{NOTE}"), BadOldSize),
            (format!("old +1\n\n{NOTE}"), BadOldSize),
            (format!("old  1\n\n{NOTE}"), BadOldSize),
            (format!("old 18446744073709551616\n\n{NOTE}"), BadOldSize),
            (format!("Old 1\n\n{NOTE}"), BadOldSize),
            (format!("old 1\r\n\n{NOTE}"), BadOldSize),
            ("old 1".into(), BadOldSize),
            (format!("old 1\n{h}"), MissingSeparator),
            (format!("old 1\n{h}\n"), MissingSeparator),
            (format!("old 1\n{h}\n\n"), MissingCheckpoint),
            (format!("old 1\n{}\n\n{NOTE}", &h[..43]), BadProofLine),
            (format!("old 1\n{h} \n\n{NOTE}"), BadProofLine),
            (format!("old 1\n{}\n\n{NOTE}", b64().encode([7u8; 31])), BadProofLine),
            // Non-canonical: the last character carries bits the decoder would drop.
            (format!("old 1\n{}\n\n{NOTE}", h.replace("c=", "d=")), BadProofLine),
            (format!("old 0\n{h}\n\n{NOTE}"), ProofFromZero),
            (format!("old 1\n{}\n{NOTE}", format!("{h}\n").repeat(64)), TooManyProofLines),
        ];
        for (body, want) in cases {
            assert_eq!(AddCheckpointRequest::parse(body.as_bytes()).unwrap_err(), want, "{body:?}");
        }
        assert!(h.ends_with("c="), "the non-canonical case edits a canonical ending: {h}");
        let ok63 = format!("old 1\n{}\n{NOTE}", format!("{h}\n").repeat(63));
        assert_eq!(AddCheckpointRequest::parse(ok63.as_bytes()).unwrap().proof.len(), 63);
        assert_eq!(AddCheckpointRequest::parse(&[0xff, b'\n']).unwrap_err(), NotUtf8);
        let big = format!("old 0\n\n{}", "a".repeat(MAX_BODY_BYTES));
        assert_eq!(AddCheckpointRequest::parse(big.as_bytes()).unwrap_err(), TooLarge);
    }

    #[test]
    fn size_answers_and_cosignature_answers_parse() {
        assert_eq!(size_body(42), "42\n");
        assert_eq!(parse_size_body(b"42\n").unwrap(), 42);
        assert_eq!(parse_size_body(b"0\n").unwrap(), 0);
        assert_eq!(parse_size_body(b"42").unwrap(), 42);
        for bad in [&b""[..], b"\n", b"042\n", b"4 2\n", b"42\n\n", b"-1\n", b"x\n", b"18446744073709551616\n"] {
            assert_eq!(parse_size_body(bad).unwrap_err(), WitnessProtocolError::BadSize, "{bad:?}");
        }
        let two = "\u{2014} w1 AAAA\n\u{2014} w2 BBBB\n";
        assert_eq!(cosignature_lines(two).unwrap(), vec!["\u{2014} w1 AAAA", "\u{2014} w2 BBBB"]);
        assert!(cosignature_lines("").is_err());
        assert!(cosignature_lines("\u{2014} w1 AAAA").is_err(), "no final newline");
        assert!(cosignature_lines("\u{2014} w1 AAAA\nhello\n").is_err());
        assert!(cosignature_lines("\u{2014} w1 AAAA\n\n").is_err());
    }
}
