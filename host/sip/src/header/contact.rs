//! Contact header values (RFC 3261 §20.10): either `*` or a list of name-addrs.

use crate::header::name_addr::NameAddr;
use crate::parse::{ParseError, trim_lws};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *` (REGISTER: remove all bindings).
    Star,
    List(Vec<NameAddr>),
}

impl Contacts {
    /// Combines the values of all Contact headers of a message, in order.
    /// `*` must stand alone: mixing it with addresses is an error.
    pub fn parse_values<'a>(
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Contacts, ParseError> {
        let mut list = Vec::new();
        let mut star = false;
        for v in values {
            if trim_lws(v) == b"*" {
                if star || !list.is_empty() {
                    return Err(ParseError::header(
                        "Contact",
                        "'*' mixed with other contacts",
                    ));
                }
                star = true;
                continue;
            }
            if star {
                return Err(ParseError::header(
                    "Contact",
                    "'*' mixed with other contacts",
                ));
            }
            NameAddr::parse_list_into(v, &mut list)?;
        }
        Ok(if star {
            Contacts::Star
        } else {
            Contacts::List(list)
        })
    }

    /// The addresses (empty for `*`).
    pub fn list(&self) -> &[NameAddr] {
        match self {
            Contacts::Star => &[],
            Contacts::List(l) => l,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_lists() {
        assert_eq!(
            Contacts::parse_values([&b" * "[..]]).unwrap(),
            Contacts::Star
        );
        assert!(Contacts::parse_values([&b"*"[..], b"<sip:a@b>"]).is_err());
        assert!(Contacts::parse_values([&b"<sip:a@b>"[..], b"*"]).is_err());
        let c = Contacts::parse_values([&b"<sip:a@b>, <sip:c@d>"[..], b"sip:e@f;q=0.5"]).unwrap();
        assert_eq!(c.list().len(), 3);
        assert_eq!(c.list()[2].q(), Some(0.5));
        assert_eq!(
            Contacts::parse_values(std::iter::empty()).unwrap(),
            Contacts::List(vec![])
        );
    }
}
