//! CSeq header: `1*DIGIT LWS Method` (RFC 3261 §20.16).

use std::fmt;

use crate::message::Method;
use crate::parse::{ParseError, is_token, parse_u32, skip_lws, skip_while, trim_lws};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(value: &[u8]) -> Result<CSeq, ParseError> {
        let err = |r| ParseError::header("CSeq", r);
        // LWS? 1*DIGIT LWS token
        let ds = skip_lws(value, 0);
        let de = skip_while(value, ds, |b| b.is_ascii_digit());
        let ms = skip_lws(value, de);
        let me = skip_while(value, ms, is_token);
        if de == ds || ms == de || me == ms {
            return Err(err("expected number and method"));
        }
        let (rest, digits, method) = (&value[me..], &value[ds..de], &value[ms..me]);
        if !trim_lws(rest).is_empty() {
            return Err(err("trailing garbage"));
        }
        // RFC 3261 §8.1.1.5: the sequence number must fit 32 bits.
        let seq = parse_u32(digits).ok_or(err("sequence number out of range"))?;
        Ok(CSeq {
            seq,
            method: Method::from_bytes(method),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{lws0, lws1, token};
    use nom::Parser;
    use proptest::prelude::*;

    /// `CSeq::parse` as it was with nom.
    fn cseq_nom(value: &[u8]) -> Result<CSeq, ParseError> {
        let err = |r| ParseError::header("CSeq", r);
        let (rest, (_, digits, _, method)) = (lws0, nom::character::complete::digit1, lws1, token)
            .parse(value)
            .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| err("expected number and method"))?;
        if !trim_lws(rest).is_empty() {
            return Err(err("trailing garbage"));
        }
        let seq = parse_u32(digits).ok_or(err("sequence number out of range"))?;
        Ok(CSeq {
            seq,
            method: Method::from_bytes(method),
        })
    }

    proptest! {
        #[test]
        fn matches_nom(v in r"[ \t\r\n]{0,2}[0-9]{0,11}[ \t\r\n]{0,2}[A-Z%x]{0,7}[ \t]{0,2}[x]{0,1}") {
            prop_assert_eq!(CSeq::parse(v.as_bytes()), cseq_nom(v.as_bytes()));
        }
    }

    #[test]
    fn cseq() {
        let c = CSeq::parse(b"0009\r\n  INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        assert_eq!(
            CSeq::parse(b"1 RE%47IST%45R").unwrap().method,
            Method::Other("RE%47IST%45R".into())
        );
        assert!(CSeq::parse(b"36612389236 REGISTER").is_err());
        assert!(CSeq::parse(b"INVITE").is_err());
        assert!(CSeq::parse(b"1INVITE").is_err());
        assert!(CSeq::parse(b"1 INVITE x").is_err());
        assert_eq!(CSeq::parse(b"7 BYE").unwrap().to_string(), "7 BYE");
    }
}
