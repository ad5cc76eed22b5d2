//! The block YAML of deploy/kubernetes/ read into JSON values, for the tests
//! that run what a manifest says (no YAML crate in the workspace).
//!
//! What the manifests use and nothing more: `---` documents, `key: value`
//! maps, `- ` lists (of scalars or of maps), `[a, "b"]` flow lists of
//! scalars, plain and double-quoted scalars (all read as strings), comments.
//! Anything else (block scalars `|`/`>`, flow maps, anchors) panics naming the
//! line, so a manifest that outgrows the reader fails its test loudly.

use serde_json::{Map, Value};

/// A line without its indentation, comment or trailing blanks.
struct Line<'a> {
    indent: usize,
    text: &'a str,
    number: usize,
}

/// Every document of `yaml`, in order.
pub fn documents(yaml: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut lines = Vec::new();
    for (n, raw) in yaml.lines().enumerate() {
        if raw.trim_end() == "---" {
            docs.push(std::mem::take(&mut lines));
            continue;
        }
        let text = strip_comment(raw).trim_end();
        if text.trim().is_empty() {
            continue;
        }
        let indent = text.len() - text.trim_start().len();
        lines.push(Line {
            indent,
            text: text.trim_start(),
            number: n + 1,
        });
    }
    docs.push(lines);
    docs.into_iter()
        .filter(|d| !d.is_empty())
        .map(|mut d| {
            let mut i = 0;
            let indent = d[0].indent;
            let v = block(&mut d, &mut i, indent);
            if let Some(l) = d.get(i) {
                panic!("yaml line {}: unexpected {:?}", l.number, l.text);
            }
            v
        })
        .collect()
}

/// `raw` up to a ` #` comment outside double quotes.
fn strip_comment(raw: &str) -> &str {
    let mut quoted = false;
    let mut prev = ' ';
    for (i, c) in raw.char_indices() {
        match c {
            '"' if prev != '\\' => quoted = !quoted,
            '#' if !quoted && prev.is_whitespace() => return &raw[..i],
            _ => {}
        }
        prev = c;
    }
    raw
}

/// The map or list whose lines start at `lines[*i]`, all at `indent`.
fn block<'a>(lines: &mut [Line<'a>], i: &mut usize, indent: usize) -> Value {
    if lines[*i].text == "-" || lines[*i].text.starts_with("- ") {
        return list(lines, i, indent);
    }
    let mut map = Map::new();
    while *i < lines.len() && lines[*i].indent == indent {
        let (text, number) = (lines[*i].text, lines[*i].number);
        let (key, rest) = match text.split_once(": ") {
            Some((k, r)) => (k, r.trim()),
            None => match text.strip_suffix(':') {
                Some(k) => (k, ""),
                None => panic!("yaml line {number}: expected key: value, got {text:?}"),
            },
        };
        let key = key.trim_matches('"').to_string();
        *i += 1;
        let value = if !rest.is_empty() {
            scalar(rest, number)
        } else {
            match lines.get(*i) {
                Some(next) if next.indent > indent => {
                    let at = next.indent;
                    block(lines, i, at)
                }
                // A list may sit at its key's indentation.
                Some(next) if next.indent == indent && next.text.starts_with("- ") => {
                    list(lines, i, indent)
                }
                _ => Value::Null,
            }
        };
        map.insert(key, value);
    }
    Value::Object(map)
}

/// The `- ` items at `indent`.
fn list<'a>(lines: &mut [Line<'a>], i: &mut usize, indent: usize) -> Value {
    let mut items = Vec::new();
    while *i < lines.len() && lines[*i].indent == indent && lines[*i].text.starts_with('-') {
        let (text, number) = (lines[*i].text, lines[*i].number);
        let rest = text[1..].trim_start();
        if rest.is_empty() {
            *i += 1;
            let at = lines.get(*i).map_or(indent, |l| l.indent);
            assert!(at > indent, "yaml line {number}: empty list item");
            items.push(block(lines, i, at));
        } else if rest.contains(": ") || rest.ends_with(':') {
            // The item's first key: read it, and the keys under it, as a map
            // indented where its text starts.
            let at = indent + (text.len() - rest.len());
            lines[*i].indent = at;
            lines[*i].text = rest;
            items.push(block(lines, i, at));
        } else {
            *i += 1;
            items.push(scalar(rest, number));
        }
    }
    Value::Array(items)
}

fn scalar(text: &str, number: usize) -> Value {
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .unwrap_or_else(|| panic!("yaml line {number}: a flow list on one line only"));
        return Value::Array(
            inner
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| scalar(s, number))
                .collect(),
        );
    }
    if let Some(inner) = text.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .unwrap_or_else(|| panic!("yaml line {number}: unterminated string"));
        return Value::String(inner.replace("\\\"", "\"").replace("\\\\", "\\"));
    }
    for bad in ["|", ">", "{", "&", "*", "'"] {
        assert!(
            !text.starts_with(bad),
            "yaml line {number}: {text:?} is beyond this reader (tests/src/yaml.rs)"
        );
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_manifest_layout() {
        let y = "# head\na: 1\n---\nkind: X  # note\nspec:\n  args: [\"serve\", \"--listen\", \"0.0.0.0:9617\"]\n  items:\n    - name: a\n      path: /x\n      sub:\n        k: \"true\"\n    - name: b\n  plain:\n  - one\n  - two\n  empty:\n";
        let d = documents(y);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0], json!({"a": "1"}));
        assert_eq!(
            d[1],
            json!({"kind": "X", "spec": {
                "args": ["serve", "--listen", "0.0.0.0:9617"],
                "items": [{"name": "a", "path": "/x", "sub": {"k": "true"}}, {"name": "b"}],
                "plain": ["one", "two"],
                "empty": null,
            }})
        );
    }

    #[test]
    #[should_panic(expected = "beyond this reader")]
    fn refuses_what_it_does_not_read() {
        documents("a: |\n  text\n");
    }
}
