//! `docs/host-functions.md` is generated from the `///` comments of `wit/*.wit`,
//! so the WIT stays the one source of the host-function reference.
//!
//! This test fails when the file differs from what the WIT would generate.
//! After editing a WIT comment, regenerate it with
//! `WISP_BLESS=1 cargo test --release -p wisp --test host_functions_doc`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use wit_parser::{
    Docs, Function, FunctionKind, Handle, InterfaceId, Resolve, Type, TypeDefKind, TypeId,
    WorldItem,
};

const DOC_PATH: &str = "docs/host-functions.md";
const BLESS_VAR: &str = "WISP_BLESS";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate sits in the repository root")
        .to_path_buf()
}

/// A WIT type as it is written in the WIT source.
fn type_name(resolve: &Resolve, ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::U8 => "u8".into(),
        Type::U16 => "u16".into(),
        Type::U32 => "u32".into(),
        Type::U64 => "u64".into(),
        Type::S8 => "s8".into(),
        Type::S16 => "s16".into(),
        Type::S32 => "s32".into(),
        Type::S64 => "s64".into(),
        Type::F32 => "f32".into(),
        Type::F64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::ErrorContext => "error-context".into(),
        Type::Id(id) => type_id_name(resolve, *id),
    }
}

fn type_id_name(resolve: &Resolve, id: TypeId) -> String {
    let def = &resolve.types[id];
    if let Some(name) = &def.name {
        return name.clone();
    }
    let opt = |t: &Option<Type>| t.as_ref().map(|t| type_name(resolve, t));
    match &def.kind {
        TypeDefKind::Option(t) => format!("option<{}>", type_name(resolve, t)),
        TypeDefKind::List(t) => format!("list<{}>", type_name(resolve, t)),
        TypeDefKind::Tuple(t) => {
            let items: Vec<_> = t.types.iter().map(|t| type_name(resolve, t)).collect();
            format!("tuple<{}>", items.join(", "))
        }
        TypeDefKind::Result(r) => match (opt(&r.ok), opt(&r.err)) {
            (None, None) => "result".into(),
            (Some(ok), None) => format!("result<{ok}>"),
            (None, Some(err)) => format!("result<_, {err}>"),
            (Some(ok), Some(err)) => format!("result<{ok}, {err}>"),
        },
        TypeDefKind::Handle(Handle::Borrow(r)) => format!("borrow<{}>", type_id_name(resolve, *r)),
        TypeDefKind::Handle(Handle::Own(r)) => type_id_name(resolve, *r),
        TypeDefKind::Type(t) => type_name(resolve, t),
        other => panic!("the generator does not render anonymous {other:?} yet"),
    }
}

fn signature(resolve: &Resolve, f: &Function) -> String {
    // A method's `self` is implicit in the WIT source.
    let skip = usize::from(matches!(f.kind, FunctionKind::Method(_)));
    let params: Vec<_> = f.params[skip..]
        .iter()
        .map(|p| format!("{}: {}", p.name, type_name(resolve, &p.ty)))
        .collect();
    let mut sig = format!("{}: func({})", f.item_name(), params.join(", "));
    if let Some(result) = &f.result {
        write!(sig, " -> {}", type_name(resolve, result)).unwrap();
    }
    sig.push(';');
    sig
}

fn push_docs(out: &mut String, docs: &Docs) {
    if let Some(text) = &docs.contents {
        out.push_str(text.trim_end());
        out.push_str("\n\n");
    }
}

/// A GitHub-style anchor for a heading text.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

fn render_function(out: &mut String, resolve: &Resolve, f: &Function, level: &str) {
    writeln!(out, "{level} `{}`\n", f.item_name()).unwrap();
    writeln!(out, "```wit\n{}\n```\n", signature(resolve, f)).unwrap();
    push_docs(out, &f.docs);
}

fn render_type(out: &mut String, resolve: &Resolve, id: TypeId) {
    let def = &resolve.types[id];
    let name = def.name.as_deref().expect("interface types are named");
    let (keyword, cases): (&str, Vec<(String, &Docs)>) = match &def.kind {
        TypeDefKind::Variant(v) => (
            "variant",
            v.cases
                .iter()
                .map(|c| {
                    let case = match &c.ty {
                        Some(t) => format!("{}({})", c.name, type_name(resolve, t)),
                        None => c.name.clone(),
                    };
                    (case, &c.docs)
                })
                .collect(),
        ),
        TypeDefKind::Enum(e) => (
            "enum",
            e.cases.iter().map(|c| (c.name.clone(), &c.docs)).collect(),
        ),
        TypeDefKind::Resource => ("resource", Vec::new()),
        // `use`d from another interface: documented there.
        TypeDefKind::Type(_) => return,
        other => panic!("the generator does not render {other:?} yet"),
    };
    writeln!(out, "### {keyword} `{name}`\n").unwrap();
    push_docs(out, &def.docs);
    if cases.is_empty() {
        return;
    }
    if cases.iter().all(|(_, docs)| docs.is_empty()) {
        let names: Vec<_> = cases.iter().map(|(c, _)| format!("`{c}`")).collect();
        writeln!(out, "Cases: {}.\n", names.join(", ")).unwrap();
        return;
    }
    for (case, docs) in cases {
        match &docs.contents {
            Some(text) => writeln!(out, "- `{case}`: {}", text.replace('\n', "\n  ")).unwrap(),
            None => writeln!(out, "- `{case}`").unwrap(),
        }
    }
    out.push('\n');
}

fn render_interface(out: &mut String, resolve: &Resolve, id: InterfaceId) {
    let iface = &resolve.interfaces[id];
    let name = iface
        .name
        .as_deref()
        .expect("imported interfaces are named");
    writeln!(out, "## Interface `{name}`\n").unwrap();
    writeln!(out, "Source: [`wit/{name}.wit`](../wit/{name}.wit).\n").unwrap();
    push_docs(out, &iface.docs);
    for &ty in iface.types.values() {
        render_type(out, resolve, ty);
        // A resource's methods follow it.
        for f in iface.functions.values() {
            if matches!(f.kind, FunctionKind::Method(r) if r == ty) {
                render_function(out, resolve, f, "####");
            }
        }
    }
    for f in iface.functions.values() {
        if matches!(f.kind, FunctionKind::Freestanding) {
            render_function(out, resolve, f, "###");
        }
    }
    if iface
        .functions
        .values()
        .any(|f| !matches!(f.kind, FunctionKind::Freestanding | FunctionKind::Method(_)))
    {
        panic!("interface {name}: the generator renders free functions and methods only");
    }
}

fn generate() -> String {
    let root = repo_root();
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve
        .push_dir(root.join("wit"))
        .expect("wit/ parses (the host's bindgen! reads the same files)");
    let package = &resolve.packages[pkg];
    let world_id = *package.worlds.get("plugin").expect("world `plugin`");
    let world = &resolve.worlds[world_id];

    let mut out = String::new();
    writeln!(out, "# Wisp host functions: `{}`\n", package.name).unwrap();
    out.push_str(
        "<!-- GENERATED from the `///` comments of wit/*.wit by\n     \
         host/tests/host_functions_doc.rs. Do not edit: change the WIT comment, then run\n     \
         WISP_BLESS=1 cargo test --release -p wisp --test host_functions_doc -->\n\n",
    );
    out.push_str(
        "The contract between the router and a routing plugin, generated from the\n\
         WIT package in [`wit/`](../wit). Names are WIT names; the Rust SDK\n\
         (`wisp_sdk`, [`plugin-sdk/`](../plugin-sdk)) spells them in snake case\n\
         (`sl.send-reply` is `msg.sl_send_reply(..)`, `tm.t-relay` is `msg.t_relay()`).\n\n",
    );

    let imports: Vec<InterfaceId> = world
        .imports
        .values()
        .filter_map(|item| match item {
            WorldItem::Interface { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let exports: Vec<&Function> = world
        .exports
        .values()
        .filter_map(|item| match item {
            WorldItem::Function(f) => Some(f),
            _ => None,
        })
        .collect();

    out.push_str("Contents\n\n");
    writeln!(
        out,
        "- [World `{}`](#{})",
        world.name,
        anchor(&format!("world {}", world.name))
    )
    .unwrap();
    for &id in &imports {
        let name = resolve.interfaces[id].name.as_deref().unwrap_or_default();
        writeln!(
            out,
            "- [Interface `{name}`](#{})",
            anchor(&format!("interface {name}"))
        )
        .unwrap();
    }
    out.push('\n');

    writeln!(out, "## World `{}`\n", world.name).unwrap();
    push_docs(&mut out, &world.docs);
    out.push_str("### Exports\n\n");
    for f in exports {
        render_function(&mut out, &resolve, f, "####");
    }
    for id in imports {
        render_interface(&mut out, &resolve, id);
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[test]
fn host_functions_doc_is_generated_from_the_wit() {
    let expected = generate();
    let path = repo_root().join(DOC_PATH);
    if std::env::var_os(BLESS_VAR).is_some() {
        std::fs::write(&path, &expected).expect("write docs/host-functions.md");
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if actual != expected {
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or_else(|| actual.lines().count().min(expected.lines().count()))
            + 1;
        panic!(
            "{DOC_PATH} is not what wit/*.wit generates (first difference at line {line}).\n\
             Edit the WIT `///` comments, not the markdown, then regenerate it with\n\
             {BLESS_VAR}=1 cargo test --release -p wisp --test host_functions_doc"
        );
    }
}

#[test]
fn every_host_function_is_documented() {
    let mut resolve = Resolve::default();
    resolve
        .push_dir(repo_root().join("wit"))
        .expect("wit/ parses");
    let undocumented: Vec<String> = resolve
        .interfaces
        .iter()
        .flat_map(|(_, iface)| {
            let name = iface.name.clone().unwrap_or_default();
            iface
                .functions
                .values()
                .filter(|f| f.docs.is_empty())
                .map(move |f| format!("{name}.{}", f.name))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "host functions without a `///` comment: {undocumented:?}"
    );
}
