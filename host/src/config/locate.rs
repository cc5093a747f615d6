//! Where in the manifest file a key is written. Errors found by serde carry
//! the span the TOML parser gave the value; rules checked after
//! deserialization name a [`KeyPath`], looked up here in the parsed
//! document, so `plugin[1].name` points at the second `[[plugin]]`'s `name`.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A key of the manifest: `usrloc.min_expires`, `plugin[1].capabilities.exec[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// The path of nested keys `keys`: `KeyPath::new(&["usrloc", "db_mode"])`.
    pub fn new(keys: &[&str]) -> KeyPath {
        KeyPath(keys.iter().map(|k| Segment::Key((*k).to_owned())).collect())
    }

    /// This path, then the key `key`.
    pub fn key(mut self, key: &str) -> KeyPath {
        self.0.push(Segment::Key(key.to_owned()));
        self
    }

    /// This path, then element `index` of the array it names.
    pub fn index(mut self, index: usize) -> KeyPath {
        self.0.push(Segment::Index(index));
        self
    }

    /// The path serde was at when it failed. Only `Seq` and `Map` occur in
    /// the manifest's types; other segments end the path there.
    pub fn from_serde(path: &serde_path_to_error::Path) -> KeyPath {
        use serde_path_to_error::Segment as S;
        let mut out = KeyPath::default();
        for segment in path {
            match segment {
                S::Seq { index } => out.0.push(Segment::Index(*index)),
                S::Map { key } => out.0.push(Segment::Key(key.clone())),
                S::Enum { .. } | S::Unknown => break,
            }
        }
        out
    }

    /// The span of this key in `doc`: where the key itself is written (for
    /// an array element, the element), else that of its nearest ancestor
    /// that is written (a key left to its default is reported at its
    /// table's header), else the start of the file.
    pub fn span_in(&self, doc: &Spanned<DeTable<'_>>) -> Range<usize> {
        match self.walk(doc).pop() {
            Some((span, _)) => span,
            None => doc.span(),
        }
    }

    /// The key of the table this path names that is written at `span`: an
    /// unknown key is reported at the key, with the path of its table.
    pub fn key_at(&self, doc: &Spanned<DeTable<'_>>, span: &Range<usize>) -> Option<String> {
        let found = self.walk(doc);
        let table = match found.last() {
            _ if found.len() < self.0.len() => return None,
            None => doc.get_ref(),
            Some((_, value)) => value.as_table()?,
        };
        table
            .iter()
            .find(|(k, _)| k.span() == *span)
            .map(|(k, _)| k.get_ref().to_string())
    }

    /// Each segment of this path as written in `doc` (its span and value),
    /// as far as it is written.
    fn walk<'a, 'i>(&self, doc: &'a Spanned<DeTable<'i>>) -> Vec<(Range<usize>, &'a DeValue<'i>)> {
        let mut found: Vec<(Range<usize>, &'a DeValue<'i>)> = Vec::new();
        for segment in &self.0 {
            let parent = found.last().map(|&(_, value)| value);
            let next = match (segment, parent) {
                (Segment::Key(name), None) => entry(doc.get_ref(), name),
                (Segment::Key(name), Some(value)) => value.as_table().and_then(|t| entry(t, name)),
                (Segment::Index(i), Some(value)) => value.get(*i).map(|e| (e.span(), e.get_ref())),
                (Segment::Index(_), None) => None,
            };
            match next {
                Some(step) => found.push(step),
                None => break,
            }
        }
        found
    }
}

/// The entry `name` of `table`: the span of its key, and its value.
fn entry<'a, 'i>(table: &'a DeTable<'i>, name: &str) -> Option<(Range<usize>, &'a DeValue<'i>)> {
    table
        .iter()
        .find(|(k, _)| {
            let k: &str = k.get_ref();
            k == name
        })
        .map(|(k, v)| (k.span(), v.get_ref()))
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line of the byte offset `at` in `text`.
pub fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
