//! `wisp:router/message`: the `msg` resource. Reads come from the parsed
//! message; edits are recorded in it and applied once at serialization.

use bytes::Bytes;
use wasmtime::component::Resource;
use wisp_sip::{Host, Uri};

use super::{HostError, PluginState};
use crate::config::Proto;
use crate::plugin::bindings::Transport;
use crate::plugin::bindings::wisp::router::message;
use crate::plugin::bindings::wisp::router::message::RequestMethod;
use crate::stateless::context::ActionError;
use crate::tm::RouteContext;

impl message::Host for PluginState {}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parse the current Request-URI, let `edit` change it, write it back.
fn edit_ruri(
    ctx: &mut RouteContext,
    edit: impl FnOnce(&mut Uri) -> Result<(), ActionError>,
) -> Result<(), ActionError> {
    let mut uri = ctx.ruri().clone();
    edit(&mut uri)?;
    ctx.set_ruri(uri);
    Ok(())
}

fn parse_host(host: &str) -> Result<Host, ActionError> {
    Host::parse(host)
        .map_err(|e| ActionError::InvalidArgument(format!("host {host:?}: {}", e.reason())))
}

fn check_user(user: &str) -> Result<(), ActionError> {
    if user
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '@' | '<' | '>' | ';' | '?'))
    {
        return Err(ActionError::InvalidArgument(format!(
            "{user:?} is not a valid user part"
        )));
    }
    Ok(())
}

/// `append_hf`'s argument: one or more `Name: value` lines joined by CRLF,
/// the final CRLF optional. An empty line, a bare CR or LF, or a folded line
/// would end or corrupt the header section, so each is refused.
fn check_header_lines(text: &str) -> Result<(), ActionError> {
    let body = text.strip_suffix("\r\n").unwrap_or(text);
    let mut pieces = body.split('\n').peekable();
    while let Some(piece) = pieces.next() {
        let line = match pieces.peek() {
            Some(_) => piece.strip_suffix('\r'),
            None => Some(piece),
        };
        let valid = line.is_some_and(|l| {
            !l.contains('\r')
                && l.split_once(':').is_some_and(|(name, _)| {
                    !name.is_empty() && name.bytes().all(wisp_sip::parse::is_token)
                })
        });
        if !valid {
            return Err(ActionError::InvalidArgument(format!(
                "{piece:?} is not a `Name: value` header line"
            )));
        }
    }
    Ok(())
}

/// The WIT form of a method: a case for the common ones (no string to copy
/// into the plugin), `other` with the token for the rest.
fn request_method(m: &wisp_sip::Method) -> RequestMethod {
    use wisp_sip::Method;
    match m {
        Method::Invite => RequestMethod::Invite,
        Method::Ack => RequestMethod::Ack,
        Method::Bye => RequestMethod::Bye,
        Method::Cancel => RequestMethod::Cancel,
        Method::Register => RequestMethod::Register,
        Method::Options => RequestMethod::Options,
        Method::Info => RequestMethod::Info,
        Method::Prack => RequestMethod::Prack,
        Method::Subscribe => RequestMethod::Subscribe,
        Method::Notify => RequestMethod::Notify,
        Method::Update => RequestMethod::Update,
        Method::Message => RequestMethod::Message,
        Method::Refer => RequestMethod::Refer,
        Method::Publish => RequestMethod::Publish,
        Method::Other(token) => RequestMethod::Other(token.clone()),
    }
}

impl message::HostMsg for PluginState {
    fn method(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<RequestMethod> {
        let ctx = self.msg(&m)?;
        Ok(match ctx.msg.method() {
            Some(method) => request_method(method),
            None => match ctx.msg.cseq() {
                Ok(c) => request_method(&c.method),
                Err(_) => RequestMethod::Other(String::new()),
            },
        })
    }

    fn is_request(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<bool> {
        Ok(self.msg(&m)?.msg.is_request())
    }

    fn status(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<Option<u16>> {
        Ok(self.msg(&m)?.msg.status())
    }

    fn ruri(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<String> {
        Ok(lossy(&self.msg(&m)?.msg.request_uri_raw()))
    }

    fn ruri_user(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<Option<String>> {
        Ok(self.msg(&m)?.ruri().user.as_deref().map(str::to_owned))
    }

    fn ruri_host(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<String> {
        Ok(self.msg(&m)?.ruri().host.to_string())
    }

    fn ruri_port(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<Option<u16>> {
        Ok(self.msg(&m)?.ruri().port)
    }

    fn set_ruri(&mut self, m: Resource<RouteContext>, uri: String) -> Result<(), HostError> {
        let parsed = Uri::parse(uri.as_bytes())
            .map_err(|e| ActionError::InvalidArgument(format!("{uri:?}: {}", e.reason())))?;
        self.msg(&m)?.set_ruri(parsed);
        Ok(())
    }

    fn revert_uri(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<()> {
        let ctx = self.msg(&m)?;
        if let wisp_sip::StartLine::Request { uri, .. } = ctx.msg.start_line()
            && let Ok(original) = Uri::parse(uri)
        {
            ctx.set_ruri(original);
        }
        Ok(())
    }

    fn rewrite_host(&mut self, m: Resource<RouteContext>, host: String) -> Result<(), HostError> {
        let host = parse_host(&host)?;
        Ok(edit_ruri(self.msg(&m)?, |u| {
            u.host = host;
            Ok(())
        })?)
    }

    fn rewrite_hostport(
        &mut self,
        m: Resource<RouteContext>,
        hostport: String,
    ) -> Result<(), HostError> {
        // `[v6]:port`, `host:port`, `host`, or a bare IPv6 address.
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if (!h.contains(':') || h.ends_with(']')) && !p.contains(']') => {
                let port = p.parse::<u16>().map_err(|_| {
                    ActionError::InvalidArgument(format!("port {p:?} is not a number"))
                })?;
                (h, Some(port))
            }
            _ => (hostport.as_str(), None),
        };
        let host = parse_host(host)?;
        Ok(edit_ruri(self.msg(&m)?, |u| {
            u.host = host;
            u.port = port;
            Ok(())
        })?)
    }

    fn rewrite_user(&mut self, m: Resource<RouteContext>, user: String) -> Result<(), HostError> {
        check_user(&user)?;
        Ok(edit_ruri(self.msg(&m)?, |u| {
            u.user = (!user.is_empty()).then(|| user.into());
            Ok(())
        })?)
    }

    fn rewrite_userpass(
        &mut self,
        m: Resource<RouteContext>,
        userpass: String,
    ) -> Result<(), HostError> {
        let (user, pass) = match userpass.split_once(':') {
            Some((u, p)) => (u.to_owned(), Some(p.to_owned())),
            None => (userpass.clone(), None),
        };
        check_user(&user)?;
        Ok(edit_ruri(self.msg(&m)?, |u| {
            u.user = (!user.is_empty()).then(|| user.into());
            u.password = pass.map(Into::into);
            Ok(())
        })?)
    }

    fn rewrite_port(&mut self, m: Resource<RouteContext>, port: u16) -> Result<(), HostError> {
        Ok(edit_ruri(self.msg(&m)?, |u| {
            u.port = (port != 0).then_some(port);
            Ok(())
        })?)
    }

    fn prefix(&mut self, m: Resource<RouteContext>, prefix: String) -> Result<(), HostError> {
        check_user(&prefix)?;
        Ok(edit_ruri(self.msg(&m)?, |u| {
            u.user = Some(format!("{prefix}{}", u.user.as_deref().unwrap_or("")).into());
            Ok(())
        })?)
    }

    fn strip(&mut self, m: Resource<RouteContext>, count: u32) -> Result<(), HostError> {
        Ok(edit_ruri(self.msg(&m)?, |u| {
            let rest: String = u
                .user
                .as_deref()
                .unwrap_or("")
                .chars()
                .skip(count as usize)
                .collect();
            u.user = (!rest.is_empty()).then(|| rest.into());
            Ok(())
        })?)
    }

    fn header(
        &mut self,
        m: Resource<RouteContext>,
        name: String,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.msg(&m)?.msg.header_value(&name).map(lossy))
    }

    fn headers(
        &mut self,
        m: Resource<RouteContext>,
        name: String,
    ) -> wasmtime::Result<Vec<String>> {
        Ok(self
            .msg(&m)?
            .msg
            .header_values(&name)
            .map(|v| lossy(v))
            .collect())
    }

    fn append_hf(&mut self, m: Resource<RouteContext>, line: String) -> Result<(), HostError> {
        check_header_lines(&line)?;
        // The lifted string becomes the edit as it is: no copy, and the
        // serializer writes a missing final CRLF.
        self.msg(&m)?.msg.append_raw_header_lines(Bytes::from(line));
        Ok(())
    }

    fn remove_hf(&mut self, m: Resource<RouteContext>, name: String) -> wasmtime::Result<u32> {
        Ok(self.msg(&m)?.msg.remove_headers(&name) as u32)
    }

    fn search(&mut self, m: Resource<RouteContext>, pattern: String) -> Result<bool, HostError> {
        let (re, ctx) = self.regex_and_msg(&m, pattern)?;
        Ok(re.is_match(ctx.msg.raw()))
    }

    fn search_hf(
        &mut self,
        m: Resource<RouteContext>,
        name: String,
        pattern: String,
    ) -> Result<bool, HostError> {
        let (re, ctx) = self.regex_and_msg(&m, pattern)?;
        Ok(ctx.msg.header_value_slices(&name).any(|v| re.is_match(v)))
    }

    fn body(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.msg(&m)?.msg.body().to_vec())
    }

    fn len(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<u32> {
        Ok(self.msg(&m)?.msg.len() as u32)
    }

    fn src_ip(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<String> {
        Ok(self.msg(&m)?.source.remote.ip().to_string())
    }

    fn src_port(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<u16> {
        Ok(self.msg(&m)?.source.remote.port())
    }

    fn dst_ip(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<String> {
        Ok(self.msg(&m)?.source.local.ip().to_string())
    }

    fn dst_port(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<u16> {
        Ok(self.msg(&m)?.source.local.port())
    }

    fn proto(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<Transport> {
        Ok(match self.msg(&m)?.source.proto {
            Proto::Udp => Transport::Udp,
            Proto::Tcp => Transport::Tcp,
            Proto::Tls => Transport::Tls,
            Proto::Ws => Transport::Ws,
            Proto::Wss => Transport::Wss,
        })
    }

    fn setflag(&mut self, m: Resource<RouteContext>, flag: u8) -> wasmtime::Result<()> {
        if flag < 64 {
            self.msg(&m)?.flags |= 1 << flag;
        }
        Ok(())
    }

    fn resetflag(&mut self, m: Resource<RouteContext>, flag: u8) -> wasmtime::Result<()> {
        if flag < 64 {
            self.msg(&m)?.flags &= !(1 << flag);
        }
        Ok(())
    }

    fn isflagset(&mut self, m: Resource<RouteContext>, flag: u8) -> wasmtime::Result<bool> {
        Ok(flag < 64 && self.msg(&m)?.flags & (1 << flag) != 0)
    }

    fn drop(&mut self, _m: Resource<RouteContext>) -> wasmtime::Result<()> {
        // Plugins only ever borrow a `msg`; the host owns and removes it after
        // the route call, so there is nothing to drop here.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_methods_cross_as_cases_and_extensions_keep_their_token() {
        assert!(matches!(
            request_method(&wisp_sip::Method::Invite),
            RequestMethod::Invite
        ));
        assert!(matches!(
            request_method(&wisp_sip::Method::from_bytes(b"PUBLISH")),
            RequestMethod::Publish
        ));
        // Methods are case-sensitive: `invite` is an extension token.
        match request_method(&wisp_sip::Method::from_bytes(b"invite")) {
            RequestMethod::Other(token) => assert_eq!(token, "invite"),
            other => panic!("expected Other, got {other:?}"),
        }
    }

    #[test]
    fn header_lines_are_checked_before_they_reach_the_message() {
        for ok in [
            "X-Wisp-Seen: 1",
            "X-Wisp-Seen: 1\r\n",
            "P-Hint: a\r\nP-Other: b",
            "P-Hint: a\r\nP-Other: b\r\n",
            "X-Empty:",
        ] {
            assert!(check_header_lines(ok).is_ok(), "{ok:?} refused");
        }
        for bad in [
            "",
            "\r\n",
            "no colon",
            ": no name",
            "Bad Name: x",
            "X-A: 1\nX-B: 2",
            "X-A: 1\n",
            "X-A: 1\r\n\r\nbody",
            "X-A: 1\rX-B: 2",
            "X-A: 1\r\n folded",
            "X-A: 1\r\n\r\n",
        ] {
            assert!(
                matches!(
                    check_header_lines(bad),
                    Err(ActionError::InvalidArgument(_))
                ),
                "{bad:?} accepted"
            );
        }
    }
}
