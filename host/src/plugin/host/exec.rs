//! `wisp:router/exec`: `exec-dset` and `exec-msg`, only for the programs the
//! manifest's `[plugin.capabilities] exec` grants this plugin. Starting and
//! bounding the process is `services::exec`; here: the grant check, the
//! environment Kamailio sets, and the output as a destination set.

use wasmtime::component::Resource;
use wisp_sip::{StartLine, Uri};

use super::{HostError, PluginState};
use crate::plugin::bindings::wisp::router::exec;
use crate::services::exec::{self as service, Invocation};
use crate::stateless::context::{ActionError, DestBranch, MAX_BRANCHES, RouteKind};
use crate::tm::RouteContext;

impl exec::Host for PluginState {
    fn exec_dset(&mut self, m: Resource<RouteContext>, command: String) -> Result<(), HostError> {
        if self.msg(&m)?.route == RouteKind::Reply {
            return Err(ActionError::NotAllowedHere(
                "exec_dset rewrites a request's destination set; this is a reply".into(),
            )
            .into());
        }
        let ctx = self.msg(&m)?;
        let about = About::of(ctx);
        let env = sip_env(ctx);
        let ruri = ctx.ruri().to_string();
        let inv = self.authorize(&command, &about)?;
        let out = self.run(&inv, Some(&ruri), &env, None, &about)?;
        let (first, branches) = parse_dset(&out)?;
        let ctx = self.msg(&m)?;
        ctx.set_ruri(first);
        ctx.branches = branches.into_iter().map(DestBranch::to).collect();
        Ok(())
    }

    fn exec_msg(&mut self, m: Resource<RouteContext>, command: String) -> Result<(), HostError> {
        let ctx = self.msg(&m)?;
        let about = About::of(ctx);
        let env = sip_env(ctx);
        let input = ctx.msg.raw().clone();
        let inv = self.authorize(&command, &about)?;
        self.run(&inv, None, &env, Some(input), &about)?;
        Ok(())
    }
}

/// Which message an exec is for, as its log lines name it (an exec spawns a
/// process: two small strings are nothing beside it).
struct About {
    call_id: String,
    method: String,
}

impl About {
    fn of(ctx: &RouteContext) -> About {
        let method = match ctx.msg.method() {
            Some(m) => m.to_string(),
            None => ctx
                .msg
                .cseq()
                .map(|c| c.method.to_string())
                .unwrap_or_default(),
        };
        About {
            call_id: crate::util::CallId(&ctx.msg).to_string(),
            method,
        }
    }
}

impl PluginState {
    fn authorize(&self, command: &str, about: &About) -> Result<Invocation, ActionError> {
        self.caps
            .exec
            .authorize(&self.plugin_name, command)
            .inspect_err(|e| {
                tracing::info!(
                    plugin = &*self.plugin_name,
                    call_id = %about.call_id,
                    method = %about.method,
                    "exec refused: {e}"
                )
            })
    }

    fn run(
        &self,
        inv: &Invocation,
        last_arg: Option<&str>,
        env: &[(String, String)],
        stdin: Option<bytes::Bytes>,
        about: &About,
    ) -> Result<service::Output, ActionError> {
        let timeout = self.caps.exec_timeout;
        service::blocking(|| service::run(inv, last_arg, env, stdin, timeout)).inspect_err(|e| {
            tracing::info!(
                plugin = &*self.plugin_name,
                call_id = %about.call_id,
                method = %about.method,
                "{e}"
            )
        })
    }
}

/// The environment SER's `exec_msg` (`SRCIP`) and Kamailio's `setvars`
/// give a program: the source address, the Request-URIs and their users,
/// `SIP_TID` (the top Via branch, what identifies the transaction),
/// `SIP_DID` (the To-tag) and every header field as `SIP_HF_<NAME>`.
fn sip_env(ctx: &RouteContext) -> Vec<(String, String)> {
    let src = ctx.source.remote.ip().to_string();
    let mut env = vec![
        ("SRCIP".to_owned(), src.clone()),
        ("SIP_SRCIP".to_owned(), src),
    ];
    if let StartLine::Request { uri, .. } = ctx.msg.start_line() {
        let ouser = Uri::parse(uri)
            .ok()
            .and_then(|u| u.user)
            .map(String::from)
            .unwrap_or_default();
        env.push((
            "SIP_ORURI".into(),
            String::from_utf8_lossy(uri).into_owned(),
        ));
        env.push(("SIP_OUSER".into(), ouser));
        env.push(("SIP_RURI".into(), ctx.ruri().to_string()));
        env.push((
            "SIP_USER".into(),
            ctx.ruri().user.as_deref().unwrap_or_default().to_owned(),
        ));
    }
    let branch = ctx
        .msg
        .top_via()
        .ok()
        .and_then(|v| v.branch().map(str::to_owned));
    env.push(("SIP_TID".into(), branch.unwrap_or_default()));
    let to_tag = ctx.msg.to().ok().and_then(|t| t.tag().map(str::to_owned));
    env.push(("SIP_DID".into(), to_tag.unwrap_or_default()));
    env.extend(header_vars(&ctx.msg));
    env
}

/// Kamailio's `SIP_HF_<NAME>`: the full header name in capitals with
/// every other character an underscore (`Call-ID` → `SIP_HF_CALL_ID`,
/// compact `i` too), the values of repeated headers joined with commas.
/// As Kamailio's `exec_bash_safety`, a value starting `() {` loses its
/// `()`, so no shell can take it for a function definition.
fn header_vars(msg: &wisp_sip::Message) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for h in msg.headers() {
        let name: String = "SIP_HF_"
            .chars()
            .chain(h.full_name().iter().map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => b.to_ascii_uppercase() as char,
                _ => '_',
            }))
            .collect();
        let raw = String::from_utf8_lossy(&h.value);
        let value = raw.strip_prefix("()").filter(|_| raw.starts_with("() {"));
        let value = value.unwrap_or(&raw);
        // A NUL cannot be passed in an environment; such a header is left out.
        if value.contains('\0') {
            continue;
        }
        match vars.iter_mut().find(|(n, _)| *n == name) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(value);
            }
            None => vars.push((name, value.to_owned())),
        }
    }
    vars
}

/// `exec_dset` output: the first non-empty line is the new Request-URI,
/// the others branches. All are checked before anything changes.
fn parse_dset(out: &[u8]) -> Result<(Uri, Vec<String>), ActionError> {
    let text = String::from_utf8_lossy(out);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(first) = lines.next() else {
        return Err(ActionError::Internal(
            "exec_dset: the command printed no URI".into(),
        ));
    };
    let parse = |line: &str| {
        Uri::parse(line.as_bytes()).map_err(|e| {
            ActionError::Internal(format!("exec_dset: output line {line:?}: {}", e.reason()))
        })
    };
    let ruri = parse(first)?;
    let mut branches = Vec::new();
    for line in lines {
        parse(line)?;
        if branches.len() == MAX_BRANCHES {
            return Err(ActionError::LimitReached(format!(
                "exec_dset: more than {MAX_BRANCHES} branches besides the Request-URI"
            )));
        }
        branches.push(line.to_owned());
    }
    Ok((ruri, branches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_become_sip_hf_variables_as_kamailio_names_them() {
        let msg = wisp_sip::Message::parse(bytes::Bytes::from_static(
            b"INVITE sip:bob@b SIP/2.0\r\n\
v: SIP/2.0/UDP a;branch=z9hG4bK1\r\n\
Via: SIP/2.0/UDP b;branch=z9hG4bK2\r\n\
i: abc@h\r\n\
X-Odd.Name: () { :; }; echo pwned\r\n\
e: gzip\r\n\
Content-Length: 0\r\n\r\n",
        ))
        .expect("parses");
        let vars = header_vars(&msg);
        let get = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        // Compact forms by their full names; repeated headers joined.
        assert_eq!(
            get("SIP_HF_VIA"),
            Some("SIP/2.0/UDP a;branch=z9hG4bK1,SIP/2.0/UDP b;branch=z9hG4bK2")
        );
        assert_eq!(get("SIP_HF_CALL_ID"), Some("abc@h"));
        assert_eq!(get("SIP_HF_CONTENT_ENCODING"), Some("gzip"));
        assert_eq!(get("SIP_HF_CONTENT_LENGTH"), Some("0"));
        // Symbols become '_', and no value looks like a shell function.
        assert_eq!(get("SIP_HF_X_ODD_NAME"), Some(" { :; }; echo pwned"));
        assert_eq!(vars.len(), 5, "{vars:?}");
    }

    #[test]
    fn dset_output_first_line_is_ruri_rest_are_branches() {
        let (ruri, branches) =
            parse_dset(b"\n sip:2234@foo.bar \r\nsip:a@b;transport=tcp\n\nsips:c@d:5061\n")
                .expect("valid");
        assert_eq!(ruri.to_string(), "sip:2234@foo.bar");
        assert_eq!(branches, ["sip:a@b;transport=tcp", "sips:c@d:5061"]);
    }

    #[test]
    fn dset_output_that_is_not_uris_changes_nothing() {
        assert!(matches!(parse_dset(b""), Err(ActionError::Internal(_))));
        assert!(matches!(
            parse_dset(b"sip:a@b\nnot a uri\n"),
            Err(ActionError::Internal(_))
        ));
        let many: String = (0..=MAX_BRANCHES + 1)
            .map(|i| format!("sip:u{i}@h\n"))
            .collect();
        assert!(matches!(
            parse_dset(many.as_bytes()),
            Err(ActionError::LimitReached(_))
        ));
        let exactly: String = (0..=MAX_BRANCHES)
            .map(|i| format!("sip:u{i}@h\n"))
            .collect();
        assert_eq!(
            parse_dset(exactly.as_bytes()).expect("fits").1.len(),
            MAX_BRANCHES
        );
    }
}
