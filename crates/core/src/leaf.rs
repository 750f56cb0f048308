//! The canonical leaf encoding: the exact bytes that are hashed into the Merkle tree.
//!
//! Version 1, all integers big-endian, `str` = u32 byte length then UTF-8, `opt<X>` = one byte
//! 0 (absent) or 1 (present) then X:
//!
//! ```text
//! u8 version = 1
//! str org            u64 seq           [16] id           i64 time (µs since the Unix epoch, UTC)
//! str action code
//! str actor type     str actor id      opt<str> actor email
//! opt<str target type, str target id, str target display>
//! str details
//! u32 field count, then (str key, str value) per field, keys strictly increasing bytewise
//! u8 outcome (0 success, 1 failure)
//! opt<str> source ip (canonical text form)     opt<str> source user agent
//! str recorded_by
//! ```
//!
//! Version 2 is version 1 followed by `str via` (canonical text form): the trusted proxy the
//! request came through, when the source IP is the address that proxy reported. An event without
//! one is encoded as version 1, so every event stored before version 2 existed keeps its bytes,
//! and a version 2 leaf always names a proxy.
//!
//! Decoding is strict: one byte sequence per event, so `encode(decode(b)) == b` for every `b`
//! that decodes. An auditor can re-implement this in a few dozen lines of any language.

use std::collections::BTreeMap;

use crate::{Actor, ActorKind, Event, EventAction, EventId, NewEvent, OrgSlug, Outcome, Source, Target, Timestamp};

/// The version of an event without a proxy address (`Source::via`).
pub const VERSION: u8 = 1;
/// The version of an event with one.
pub const VERSION_VIA: u8 = 2;

/// Appends the canonical encoding of `e` to `out`.
pub fn encode_into(e: &Event, out: &mut Vec<u8>) {
    encode_parts(&e.org, e.seq, e.id, e.time, &e.body, out)
}

/// Appends the canonical encoding of the event made of these parts to `out`, without building
/// an [`Event`] (the append path encodes submissions in place).
pub fn encode_parts(org: &OrgSlug, seq: u64, id: EventId, time: Timestamp, b: &NewEvent, out: &mut Vec<u8>) {
    out.push(if b.source.via.is_some() { VERSION_VIA } else { VERSION });
    put_str(out, org.as_str());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(id.0.as_bytes());
    out.extend_from_slice(&time.as_micros().to_be_bytes());
    put_str(out, b.action.code());
    put_str(out, b.actor.kind.code());
    put_str(out, &b.actor.id);
    put_opt_str(out, b.actor.email.as_deref());
    match &b.target {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            put_str(out, &t.kind);
            put_str(out, &t.id);
            put_str(out, &t.display);
        }
    }
    put_str(out, &b.details);
    put_len(out, b.fields.len());
    for (k, v) in &b.fields {
        put_str(out, k);
        put_str(out, v);
    }
    out.push(match b.outcome {
        Outcome::Success => 0,
        Outcome::Failure => 1,
    });
    put_opt_str(out, b.source.ip.map(|ip| ip.to_string()).as_deref());
    put_opt_str(out, b.source.user_agent.as_deref());
    put_str(out, &b.recorded_by);
    if let Some(via) = b.source.via {
        put_str(out, &via.to_string());
    }
}

pub fn encode(e: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    encode_into(e, &mut out);
    out
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    // Lengths are bounded by validation far below u32::MAX.
    out.extend_from_slice(&(n as u32).to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed leaf at byte {offset}: {what}")]
pub struct LeafError {
    pub offset: usize,
    pub what: &'static str,
}

/// The columns a store keeps beside the leaf for its indexes, read without allocating. A
/// verifier compares them with the store's columns so that an index cannot lie about its leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafKeys<'a> {
    pub org: &'a str,
    pub seq: u64,
    pub time: Timestamp,
    pub action: &'a str,
    /// The User column: actor email, or actor id.
    pub user: &'a str,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, what: &'static str) -> LeafError {
        LeafError { offset: self.pos, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], LeafError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| self.err("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LeafError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, LeafError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<usize, LeafError> {
        Ok(u32::from_be_bytes(self.array()?) as usize)
    }

    fn str(&mut self) -> Result<&'a str, LeafError> {
        let n = self.u32()?;
        let at = self.pos;
        std::str::from_utf8(self.take(n)?).map_err(|_| LeafError { offset: at, what: "invalid UTF-8" })
    }

    fn flag(&mut self) -> Result<bool, LeafError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(LeafError { offset: self.pos - 1, what: "bad presence flag" }),
        }
    }

    fn opt_str(&mut self) -> Result<Option<&'a str>, LeafError> {
        if self.flag()? {
            Ok(Some(self.str()?))
        } else {
            Ok(None)
        }
    }
}

/// Decodes a leaf strictly into an owned event.
pub fn decode(buf: &[u8]) -> Result<Event, LeafError> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.u8()?;
    if version != VERSION && version != VERSION_VIA {
        return Err(LeafError { offset: 0, what: "unknown version" });
    }
    let org_at = r.pos;
    let org = OrgSlug::parse(r.str()?).map_err(|_| LeafError { offset: org_at, what: "bad organization" })?;
    let seq = u64::from_be_bytes(r.array()?);
    let id = EventId(uuid::Uuid::from_bytes(r.array()?));
    let time = Timestamp::from_micros(i64::from_be_bytes(r.array()?));
    let at = r.pos;
    let action = EventAction::from_code(r.str()?).map_err(|_| LeafError { offset: at, what: "unknown action" })?;
    let at = r.pos;
    let kind = ActorKind::from_code(r.str()?).ok_or(LeafError { offset: at, what: "unknown actor type" })?;
    let actor = Actor { kind, id: r.str()?.to_owned(), email: r.opt_str()?.map(str::to_owned) };
    let target = if r.flag()? {
        Some(Target { kind: r.str()?.to_owned(), id: r.str()?.to_owned(), display: r.str()?.to_owned() })
    } else {
        None
    };
    let details = r.str()?.to_owned();
    let n = r.u32()?;
    let mut fields = BTreeMap::new();
    let mut last: Option<&str> = None;
    for _ in 0..n {
        let at = r.pos;
        let k = r.str()?;
        if last.is_some_and(|l| l >= k) {
            return Err(LeafError { offset: at, what: "field keys not strictly increasing" });
        }
        last = Some(k);
        fields.insert(k.to_owned(), r.str()?.to_owned());
    }
    let outcome = match r.u8()? {
        0 => Outcome::Success,
        1 => Outcome::Failure,
        _ => return Err(LeafError { offset: r.pos - 1, what: "bad outcome" }),
    };
    let at = r.pos;
    let ip = r.opt_str()?.map(|s| canonical_ip(s, at)).transpose()?;
    let user_agent = r.opt_str()?.map(str::to_owned);
    let recorded_by = r.str()?.to_owned();
    let via = if version == VERSION_VIA {
        let at = r.pos;
        Some(canonical_ip(r.str()?, at)?)
    } else {
        None
    };
    if r.pos != buf.len() {
        return Err(r.err("trailing bytes"));
    }
    Ok(Event {
        org,
        seq,
        id,
        time,
        body: NewEvent {
            action,
            actor,
            target,
            details,
            fields,
            outcome,
            source: Source { ip, user_agent, via },
            recorded_by,
        },
    })
}

fn canonical_ip(s: &str, at: usize) -> Result<std::net::IpAddr, LeafError> {
    let ip: std::net::IpAddr = s.parse().map_err(|_| LeafError { offset: at, what: "bad ip" })?;
    if ip.to_string() != s {
        return Err(LeafError { offset: at, what: "ip not in canonical form" });
    }
    Ok(ip)
}

/// Reads only the indexed columns from a leaf, without allocating. It does not check the rest of
/// the leaf; [`decode`] does.
pub fn keys(buf: &[u8]) -> Result<LeafKeys<'_>, LeafError> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.u8()?;
    if version != VERSION && version != VERSION_VIA {
        return Err(LeafError { offset: 0, what: "unknown version" });
    }
    let org = r.str()?;
    let seq = u64::from_be_bytes(r.array()?);
    r.take(16)?;
    let time = Timestamp::from_micros(i64::from_be_bytes(r.array()?));
    let action = r.str()?;
    r.str()?;
    let id = r.str()?;
    let user = r.opt_str()?.unwrap_or(id);
    Ok(LeafKeys { org, seq, time, action, user })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample;

    fn event() -> Event {
        Event {
            org: OrgSlug::parse("acme").unwrap(),
            seq: 42,
            id: EventId::from_random_bytes([7; 16]),
            time: Timestamp::from_micros(1_764_140_843_123_456),
            body: sample(),
        }
    }

    #[test]
    fn round_trips() {
        let e = event();
        let b = encode(&e);
        assert_eq!(decode(&b).unwrap(), e);
        let k = keys(&b).unwrap();
        assert_eq!(
            (k.org, k.seq, k.time, k.action, k.user),
            ("acme", 42, e.time, "user.role_updated", "ada@example.com")
        );

        let mut bare = event();
        bare.body.target = None;
        bare.body.actor.email = None;
        bare.body.fields.clear();
        bare.body.source = Source::default();
        let b = encode(&bare);
        assert_eq!(decode(&b).unwrap(), bare);
        assert_eq!(keys(&b).unwrap().user, "u-1");
    }

    #[test]
    fn pinned_encoding() {
        // A change to this value is a change of the leaf format: bump VERSION instead.
        let mut e = event();
        e.body.fields.clear();
        e.body.source.user_agent = None;
        e.body.target = None;
        let hex = hex::encode(encode(&e));
        assert_eq!(
            hex,
            concat!(
                "01",
                "0000000461636d65",
                "000000000000002a",
                "07070707070747078707070707070707",
                "0006447a0c49c300",
                "00000011757365722e726f6c655f75706461746564",
                "000000047573657200000003752d31",
                "010000000f616461406578616d706c652e636f6d",
                "00",
                "00000022526f6c65206368616e6765642066726f6d2041756469746f7220746f2041646d696e",
                "00000000",
                "00",
                "010000000b3230332e302e3131332e37",
                "00",
                "00000007636f6e736f6c65"
            )
        );
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_refused() {
        let b = encode(&event());
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(decode(&long).unwrap_err().what, "trailing bytes");
    }

    #[test]
    fn non_canonical_forms_are_refused() {
        let mut e = event();
        e.body.fields.clear();
        e.body.fields.insert("a".into(), "1".into());
        e.body.fields.insert("b".into(), "2".into());
        let b = encode(&e);
        // Swap the two keys' bytes: still well-formed, but not in order.
        let swapped: Vec<u8> = {
            let s = b.clone();
            let i = s.windows(5).position(|w| w == [0, 0, 0, 1, b'a']).unwrap();
            let j = s.windows(5).position(|w| w == [0, 0, 0, 1, b'b']).unwrap();
            let mut s2 = s.clone();
            s2[i + 4] = b'b';
            s2[j + 4] = b'a';
            s2
        };
        assert_eq!(decode(&swapped).unwrap_err().what, "field keys not strictly increasing");
        let mut bad_version = b.clone();
        bad_version[0] = 3;
        assert_eq!(decode(&bad_version).unwrap_err().what, "unknown version");
        // Version 2 without its proxy address is a truncated leaf, not a second encoding.
        let mut no_via = b.clone();
        no_via[0] = VERSION_VIA;
        assert!(decode(&no_via).is_err());
    }

    #[test]
    fn a_proxy_address_is_version_2_and_round_trips() {
        let mut e = event();
        let v1 = encode(&e);
        e.body.source.via = Some("10.0.0.5".parse().unwrap());
        let v2 = encode(&e);
        assert_eq!(v2[0], VERSION_VIA);
        // Version 1 followed by the proxy's address: nothing before it moves.
        assert_eq!(&v2[1..v1.len()], &v1[1..]);
        assert_eq!(hex::encode(&v2[v1.len()..]), "0000000831302e302e302e35");
        assert_eq!(decode(&v2).unwrap(), e);
        assert_eq!(keys(&v2).unwrap().seq, 42);
        for n in 0..v2.len() {
            assert!(decode(&v2[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        let mut odd = e.clone();
        odd.body.source.via = Some("::ffff:10.0.0.5".parse().unwrap());
        assert_eq!(decode(&encode(&odd)).unwrap(), odd);
    }
}
