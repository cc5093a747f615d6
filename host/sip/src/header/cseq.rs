//! CSeq header: `1*DIGIT LWS Method` (RFC 3261 §20.16).

use std::fmt;

use nom::Parser;

use crate::message::Method;
use crate::parse::{ParseError, lws0, lws1, parse_u32, token, trim_lws};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(value: &[u8]) -> Result<CSeq, ParseError> {
        let err = |r| ParseError::header("CSeq", r);
        let (rest, (_, digits, _, method)) = (lws0, nom::character::complete::digit1, lws1, token)
            .parse(value)
            .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| err("expected number and method"))?;
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
