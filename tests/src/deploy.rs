//! Readers of the fleet files for tests/deploy.rs: the alerts of a rules file,
//! the metric names of a PromQL expression, Grafana's variables filled in.

use std::collections::BTreeSet;

/// The names in README.md's Fleet metrics table (first cell of each row),
/// from the README's text.
pub fn readme_metrics(readme: &str) -> BTreeSet<String> {
    let fleet = &readme[readme.find("## Fleet").expect("README has a Fleet section")..];
    let fleet = &fleet[..fleet[3..].find("\n## ").map_or(fleet.len(), |i| i + 3)];
    let table = &fleet[fleet.find("| metric | type |").expect("a metrics table")..];
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1))
        .map(|c| c.trim().trim_matches('`').to_string())
        .collect()
}

/// One alerting rule of rules.yml: its name, expression and annotations.
pub struct Alert {
    pub name: String,
    pub expr: String,
    pub annotations: Vec<(String, String)>,
}

/// The alerts of a rules file in rules.yml's layout (`- alert:` items with a
/// one-line `expr:` and an `annotations:` map whose values are one line or a
/// `|` block). Anything else in that layout fails the test.
pub fn alerts(yaml: &str) -> Vec<Alert> {
    let mut out: Vec<Alert> = Vec::new();
    let mut in_annotations = false;
    let mut block: Option<(String, usize)> = None;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if let Some((key, at)) = &block {
            if indent > *at || t.is_empty() {
                let a = out.last_mut().unwrap();
                let (_, v) = a.annotations.iter_mut().find(|(k, _)| k == key).unwrap();
                v.push_str(t);
                v.push('\n');
                continue;
            }
            block = None;
        }
        if let Some(name) = t.strip_prefix("- alert: ") {
            out.push(Alert {
                name: name.to_string(),
                expr: String::new(),
                annotations: Vec::new(),
            });
            in_annotations = false;
        } else if let Some(expr) = t.strip_prefix("expr: ") {
            assert!(!expr.starts_with(['|', '>']), "one-line exprs only: {t}");
            out.last_mut().expect("expr before an alert").expr = expr.to_string();
        } else if t == "annotations:" {
            in_annotations = true;
        } else if t.ends_with(':') && !t.contains(' ') {
            in_annotations = false;
        } else if in_annotations && let Some((k, v)) = t.split_once(": ") {
            let a = out.last_mut().unwrap();
            if v == "|" {
                block = Some((k.to_string(), indent));
                a.annotations.push((k.to_string(), String::new()));
            } else {
                a.annotations.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

/// A Grafana expression as Prometheus sees it once the variables are filled.
pub fn fill_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__range", "6h")
        .replace("$__interval", "1m")
        .replace("$instance", ".*")
        .replace("$cause", ".*")
}

/// The metric names in a PromQL expression: identifiers that are not inside
/// quotes, braces, brackets or label lists, not functions and not keywords.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut plain = String::new();
    let (mut quote, mut depth_brace, mut depth_bracket) = (false, 0, 0);
    for c in expr.chars() {
        match c {
            '"' => quote = !quote,
            '{' if !quote => depth_brace += 1,
            '}' if !quote => depth_brace -= 1,
            '[' if !quote => depth_bracket += 1,
            ']' if !quote => depth_bracket -= 1,
            _ if quote || depth_brace > 0 || depth_bracket > 0 => {}
            _ => plain.push(c),
        }
        if matches!(c, '}' | ']' | '"') {
            plain.push(' ');
        }
    }
    plain.push(' '); // the last word ends too
    let words: Vec<(usize, &str)> = plain
        .match_indices(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .fold((Vec::new(), 0), |(mut v, start), (i, _)| {
            v.push((start, &plain[start..i]));
            (v, i + 1)
        })
        .0;
    let mut names = BTreeSet::new();
    let mut skip_list = false;
    for (start, w) in words {
        let after = plain[start + w.len()..].trim_start();
        if skip_list {
            if after.starts_with(')') {
                skip_list = false;
            }
            continue;
        }
        if w.is_empty() || w.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        if matches!(
            w,
            "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
        ) {
            skip_list = after.starts_with('(') && !after.starts_with("()");
            continue;
        }
        let next = after.split(|c: char| !c.is_ascii_alphanumeric()).next();
        if matches!(w, "and" | "or" | "unless" | "bool" | "offset")
            || after.starts_with('(')
            || matches!(next, Some("by" | "without"))
        {
            continue; // keywords, functions, aggregations
        }
        names.insert(w.to_string());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_leave_out_functions_labels_and_keywords() {
        let e = r#"sum by (instance, cause) (rate(netdrop_drops_total{cause!="other",x=~"a|b"}[5m])) > 1 or up{job="x"} == 0"#;
        assert_eq!(
            metric_names(e),
            BTreeSet::from(["netdrop_drops_total".to_string(), "up".to_string()])
        );
        assert_eq!(
            metric_names("max without (pod) (a_b) / on (netns) group_left (x) c:d"),
            BTreeSet::from(["a_b".to_string(), "c:d".to_string()])
        );
    }

    #[test]
    fn alerts_with_block_annotations() {
        let y = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        for: 5m\n        labels:\n          severity: x\n        annotations:\n          summary: \"s\"\n          runbook: |\n            line one\n            line two\n      - alert: B\n        expr: x > 1\n";
        let a = alerts(y);
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].name.as_str(), a[0].expr.as_str()), ("A", "up == 0"));
        assert_eq!(
            a[0].annotations[1],
            ("runbook".to_string(), "line one\nline two\n".to_string())
        );
        assert!(a[1].annotations.is_empty());
    }
}
