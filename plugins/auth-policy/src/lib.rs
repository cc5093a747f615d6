//! # Authentication policy — seed 003, "Authentication Policy: Prevention of Unauthorized Domain Name Use in From and More"
//!
//! Anybody can write our domain into the From header field. A proxy that
//! relays such a request unchecked lends the forged address its own
//! credibility, so SER's HOWTO searches the request for a From header
//! claiming the served domain and demands credentials of those requests
//! only: callers from other domains still get through without an account
//! (`shared/seeds/003_*.txt`):
//!
//! ```text
//! # does the user claim our domain "foo.bar" in From?
//! if (search("^(f|From):.*foo.bar")) {
//!     # if so, verify credential
//!     if (!proxy_authorize("foo.bar", "subscriber")) {
//!          # don't proceed if credentials broken; challenge
//!          proxy_challenge("foo.bar", "0");
//!          break;
//!     };
//! };
//! t_relay();
//! ```
//!
//! `message.search` is textops' `search`: a regular expression over the raw
//! request. SER compiles it case-insensitively with `^` anchored at each
//! line (`REG_ICASE | REG_NEWLINE`), which is `(?mi)` here. The seed's
//! pattern leaves the dots of the domain unescaped; the plugin escapes them
//! so that `fooxbar` is not taken for `foo.bar`. Credentials are consumed
//! before the request is relayed, so the next hop never sees them. ACK and
//! CANCEL, which cannot be challenged (RFC 3261 §22.1), pass
//! `proxy_authorize` as in Kamailio.
//!
//! Param: `domain` (the served domain and realm; the seed's `foo.bar` by
//! default). Subscribers: `wisp ctl user add alice@foo.bar s3cret`.
//!
//! Build: `make plugins` (component at `target/plugins/auth_policy.wasm`).

use wisp_sdk::prelude::*;

struct AuthPolicy {
    /// The realm of the challenge (the seed's "foo.bar").
    domain: String,
    /// The seed's `^(f|From):.*foo.bar`, for `domain`.
    claims_our_domain: String,
}

impl Configured for AuthPolicy {
    fn init(params: &Params) -> Result<Self, String> {
        let domain: String = params.get_or("domain", "foo.bar".to_owned())?;
        if domain.is_empty() {
            return Err("domain must not be empty".into());
        }
        let claims_our_domain = format!("(?mi)^(f|From):.*{}", escape(&domain));
        Ok(AuthPolicy {
            domain,
            claims_our_domain,
        })
    }

    fn route(&self, msg: &Msg) -> Result {
        // if (search("^(f|From):.*foo.bar")) {
        if msg.search(&self.claims_our_domain)? {
            // if (!proxy_authorize("foo.bar", "subscriber")) { proxy_challenge("foo.bar", "0"); break; }
            if auth::require_proxy(msg, &self.domain)?.challenged() {
                return Ok(());
            }
            msg.consume_credentials()?;
        }
        // t_relay();
        msg.relay()
    }
}

/// `domain` as a literal in a regular expression.
fn escape(domain: &str) -> String {
    let mut out = String::with_capacity(domain.len() + 4);
    for c in domain.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

wisp_sdk::export!(AuthPolicy);
