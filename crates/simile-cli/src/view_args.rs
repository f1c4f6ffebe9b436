//! The view options shared by `similarity sort`, `similarity compute`, `dataset head`,
//! `dataset export` and `embed`: which samples a command works on. Every flag becomes a stage of
//! the JSON view description the App uses (`simile::parse_stages`), so `--view FILE.json` and the
//! flags are two spellings of one thing, checked by one parser.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

/// Options that narrow a command to a view of the dataset. Applied in this order: the stages of
/// `--view`, then `--match`, `--tag`, `--filter-labels`, `--take`, `--skip`, `--limit`.
#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "View (which samples)")]
pub struct ViewArgs {
    /// Only samples whose field passes EXPR: FIELD=VALUE, FIELD!=VALUE, FIELD>N (also >=, <, <=),
    /// FIELD (has a value), !FIELD (has none), or a JSON filter such as '{"gt": ["score", 0.5]}'.
    /// Repeat to require all.
    #[arg(long = "match", value_name = "EXPR")]
    pub matches: Vec<String>,
    /// Only samples with any of these tags (repeat, or separate with commas).
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Keep only the labels of FIELD named LABEL (one of several), and only samples with one.
    #[arg(long, value_name = "FIELD=LABEL,...")]
    pub filter_labels: Vec<String>,
    /// A random subset of N samples (the same N for the same --seed).
    #[arg(long, value_name = "N")]
    pub take: Option<usize>,
    /// Seed of --take (default 0).
    #[arg(long, value_name = "S", requires = "take")]
    pub seed: Option<u64>,
    /// Leave out the first N samples.
    #[arg(long, value_name = "N")]
    pub skip: Option<usize>,
    /// At most N samples.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// A view description: a JSON array of stages, as the App writes it (see docs/app.md).
    #[arg(long, value_name = "FILE.json")]
    pub view: Option<PathBuf>,
}

impl ViewArgs {
    /// True when no option narrows the dataset.
    pub fn is_empty(&self) -> bool {
        self.matches.is_empty()
            && self.tags.is_empty()
            && self.filter_labels.is_empty()
            && self.take.is_none()
            && self.skip.is_none()
            && self.limit.is_none()
            && self.view.is_none()
    }

    /// The stages these options describe, each checked by `simile::parse_stages`; an error names
    /// the flag and the value it came from.
    pub fn stages(&self) -> Result<Vec<simile::Stage>> {
        let mut stages = Vec::new();
        if let Some(path) = &self.view {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--view: cannot read {}", path.display()))?;
            stages.extend(
                simile::parse_stages(&text)
                    .with_context(|| format!("--view {} is not a view", path.display()))?,
            );
        }
        for expr in &self.matches {
            let filter = parse_match(expr).with_context(|| format!("--match '{expr}'"))?;
            stages.extend(checked(json!({ "match": filter }), "--match", expr)?);
        }
        if !self.tags.is_empty() {
            let given = self.tags.join(",");
            stages.extend(checked(
                json!({ "match_tags": self.tags }),
                "--tag",
                &given,
            )?);
        }
        for spec in &self.filter_labels {
            let stage =
                parse_filter_labels(spec).with_context(|| format!("--filter-labels '{spec}'"))?;
            stages.extend(checked(stage, "--filter-labels", spec)?);
        }
        if let Some(n) = self.take {
            let stage = json!({ "take": { "n": n, "seed": self.seed.unwrap_or(0) } });
            stages.extend(checked(stage, "--take", &n.to_string())?);
        }
        if let Some(n) = self.skip {
            stages.extend(checked(json!({ "skip": n }), "--skip", &n.to_string())?);
        }
        if let Some(n) = self.limit {
            stages.extend(checked(json!({ "limit": n }), "--limit", &n.to_string())?);
        }
        Ok(stages)
    }

    /// The dataset narrowed by these options (the whole dataset without any).
    pub fn apply(&self, ds: &simile::Dataset) -> Result<simile::View> {
        Ok(ds.view_of(self.stages()?))
    }
}

/// One stage through the shared parser, its error naming the flag.
fn checked(stage: Value, flag: &str, given: &str) -> Result<Vec<simile::Stage>> {
    simile::parse_stages(&Value::Array(vec![stage]).to_string())
        .with_context(|| format!("{flag} '{given}'"))
}

/// `FIELD=VALUE`, `FIELD!=VALUE`, `FIELD>N`, `FIELD>=N`, `FIELD<N`, `FIELD<=N`, `FIELD`, `!FIELD`,
/// or a JSON filter (`{...}`), as the JSON filter of a `match` stage.
fn parse_match(expr: &str) -> Result<Value> {
    let e = expr.trim();
    if e.starts_with('{') {
        return serde_json::from_str(e).context("not a JSON filter");
    }
    let Some(at) = e.find(['=', '!', '<', '>']) else {
        return field(e).map(|f| json!({ "exists": f }));
    };
    let (lhs, rest) = e.split_at(at);
    if at == 0 && rest.starts_with('!') && !rest[1..].contains(['=', '!', '<', '>']) {
        return field(&rest[1..]).map(|f| json!({ "missing": f }));
    }
    let (op, value) = ["!=", ">=", "<=", "=", ">", "<"]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v.trim())))
        .context("expected FIELD=VALUE, FIELD!=VALUE, FIELD>N, FIELD>=N, FIELD<N, FIELD<=N, FIELD or !FIELD")?;
    let name = field(lhs)?;
    match op {
        "=" | "!=" => {
            let key = if op == "=" { "eq" } else { "ne" };
            Ok(json!({ key: [name, scalar(value)] }))
        }
        _ => {
            let x: f64 = value
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite())
                .with_context(|| format!("'{op}' needs a number, got '{value}'"))?;
            let key = match op {
                ">" => "gt",
                ">=" => "gte",
                "<" => "lt",
                _ => "lte",
            };
            Ok(json!({ key: [name, x] }))
        }
    }
}

fn field(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        bail!("a field name is missing");
    }
    Ok(name.to_string())
}

/// A value as written: a JSON number, boolean, null or quoted string, else the text itself.
fn scalar(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null | Value::String(_))) => v,
        _ => Value::String(text.to_string()),
    }
}

/// `FIELD=LABEL,LABEL2` as a `filter_labels` stage keeping those labels.
fn parse_filter_labels(spec: &str) -> Result<Value> {
    let (name, labels) = spec
        .split_once('=')
        .context("expected FIELD=LABEL,... (e.g. ground_truth=cat,dog)")?;
    let labels: Vec<&str> = labels
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if labels.is_empty() {
        bail!("no label after '='");
    }
    Ok(json!({ "filter_labels": { "field": field(name)?, "filter": { "label_in": labels } } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(args: &[&str]) -> ViewArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            v: ViewArgs,
        }
        let mut all = vec!["t"];
        all.extend_from_slice(args);
        T::try_parse_from(all).expect("parses").v
    }

    #[test]
    fn expressions() {
        assert_eq!(
            parse_match("label=cat").unwrap(),
            json!({"eq": ["label", "cat"]})
        );
        assert_eq!(parse_match("n = 3").unwrap(), json!({"eq": ["n", 3]}));
        assert_eq!(parse_match("s!=\"3\"").unwrap(), json!({"ne": ["s", "3"]}));
        assert_eq!(parse_match("u>=0.5").unwrap(), json!({"gte": ["u", 0.5]}));
        assert_eq!(parse_match("u<1").unwrap(), json!({"lt": ["u", 1.0]}));
        assert_eq!(parse_match("u").unwrap(), json!({"exists": "u"}));
        assert_eq!(parse_match("!u").unwrap(), json!({"missing": "u"}));
        assert_eq!(
            parse_match(r#"{"in": ["l", [1, 2]]}"#).unwrap(),
            json!({"in": ["l", [1, 2]]})
        );
        assert!(parse_match("u>x").is_err());
        assert!(parse_match("=3").is_err());
        assert!(parse_match("u>inf").is_err());
    }

    #[test]
    fn flags_become_stages_in_order() {
        let v = view(&[
            "--match",
            "u>0.5",
            "--tag",
            "a,b",
            "--filter-labels",
            "gt=cat,dog",
            "--take",
            "3",
            "--seed",
            "7",
            "--skip",
            "1",
            "--limit",
            "2",
        ]);
        let stages = v.stages().unwrap();
        let want = simile::parse_stages(
            r#"[{"match":{"gt":["u",0.5]}},{"match_tags":["a","b"]},
                {"filter_labels":{"field":"gt","filter":{"label_in":["cat","dog"]}}},
                {"take":{"n":3,"seed":7}},{"skip":1},{"limit":2}]"#,
        )
        .unwrap();
        assert_eq!(stages, want);
        assert!(view(&[]).is_empty() && view(&[]).stages().unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_flag() {
        let msg = |args: &[&str]| format!("{:#}", view(args).stages().unwrap_err());
        assert!(msg(&["--match", "a\"b=1"]).starts_with("--match 'a\"b=1'"));
        assert!(msg(&["--match", "u>big"]).contains("needs a number"));
        assert!(msg(&["--filter-labels", "gt"]).starts_with("--filter-labels 'gt'"));
        assert!(msg(&["--tag", " "]).starts_with("--tag"));
    }
}
