//! The few OData query options the emulator understands (`$top`, `$skip`, `$select`,
//! `$filter` with one `prop eq 'value'` clause, `includeHiddenFolders`) and
//! collection paging with `@odata.nextLink`.
//!
//! Strictness: any other `$` option, a second filter clause, or a filter on a property
//! the collection does not support is a `400`, so clients cannot silently rely on
//! options the emulator would ignore. `$select` and `$expand` are read by the
//! message handlers ([`super::graph_read`]); folders ignore `$select` (full objects are
//! returned, which a client asking for fewer fields must tolerate) and refuse `$expand`.

use axum::http::Uri;
use reqwest::Url;
use serde_json::{Value, json};

use super::graph_error::GraphError;

/// Largest `$top` Graph accepts for mail collections.
const MAX_TOP: usize = 1000;

/// One `prop eq 'value'` clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) property: String,
    pub(crate) value: String,
}

/// Parsed options of a collection request.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListQuery {
    pub(crate) pairs: Vec<(String, String)>,
    pub(crate) top: Option<usize>,
    pub(crate) skip: usize,
    pub(crate) filter: Option<Filter>,
    pub(crate) include_hidden: bool,
}

fn bad(message: impl Into<String>) -> GraphError {
    GraphError::bad_request("BadRequest", message)
}

/// Parses the query; `filterable` lists the properties `$filter` may name.
pub(crate) fn parse(
    pairs: Vec<(String, String)>,
    filterable: &[&str],
) -> Result<ListQuery, GraphError> {
    let mut q = ListQuery::default();
    for (key, value) in &pairs {
        match key.as_str() {
            "$top" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_TOP).contains(&n) => q.top = Some(n),
                _ => {
                    return Err(bad(format!(
                        "Invalid value '{value}' for query option '$top'; it must be 1..={MAX_TOP}."
                    )));
                }
            },
            "$skip" => {
                q.skip = value.parse().map_err(|_| {
                    bad(format!("Invalid value '{value}' for query option '$skip'."))
                })?
            }
            "$select" | "$expand" => {}
            "$filter" => q.filter = Some(parse_filter(value, filterable)?),
            "includeHiddenFolders" => match value.as_str() {
                "true" => q.include_hidden = true,
                "false" => q.include_hidden = false,
                _ => {
                    return Err(bad(format!(
                        "Invalid value '{value}' for includeHiddenFolders; use true or false."
                    )));
                }
            },
            k if k.starts_with('$') => {
                return Err(bad(format!(
                    "Query option '{k}' is not supported by the emulator."
                )));
            }
            _ => {}
        }
    }
    q.pairs = pairs;
    Ok(q)
}

/// Parses `prop eq 'value'` (OData string literal: `''` is a quote).
fn parse_filter(text: &str, filterable: &[&str]) -> Result<Filter, GraphError> {
    let invalid = || {
        GraphError::bad_request(
            "ErrorInvalidUrlQueryFilter",
            format!(
                "The filter '{text}' is not supported; use one clause: <property> eq '<value>' with property one of {filterable:?}."
            ),
        )
    };
    let text_trim = text.trim();
    let (property, rest) = text_trim
        .split_once(char::is_whitespace)
        .ok_or_else(invalid)?;
    let rest = rest.trim_start();
    let literal = rest.strip_prefix("eq").ok_or_else(invalid)?.trim_start();
    let inner = literal.strip_prefix('\'').ok_or_else(invalid)?;
    let mut value = String::new();
    let mut chars = inner.chars().peekable();
    loop {
        match chars.next() {
            None => return Err(invalid()),
            Some('\'') if chars.peek() == Some(&'\'') => {
                chars.next();
                value.push('\'');
            }
            Some('\'') => break,
            Some(c) => value.push(c),
        }
    }
    if chars.any(|c| !c.is_whitespace()) || !filterable.contains(&property) {
        return Err(invalid());
    }
    Ok(Filter {
        property: property.to_owned(),
        value,
    })
}

/// A page of `values` with `@odata.nextLink` when more remain.
pub(crate) fn page(
    base_url: &str,
    uri: &Uri,
    q: &ListQuery,
    default_size: usize,
    values: Vec<Value>,
    context: &str,
) -> Value {
    let size = q.top.unwrap_or(default_size).max(1);
    let total = values.len();
    let end = q.skip.saturating_add(size).min(total);
    let value: Vec<Value> = values.into_iter().skip(q.skip).take(size).collect();
    let mut out = json!({ "@odata.context": context, "value": value });
    if end < total
        && let Ok(mut next) = Url::parse(&format!("{base_url}{}", uri.path()))
    {
        {
            let mut pairs = next.query_pairs_mut();
            for (k, v) in q.pairs.iter().filter(|(k, _)| k != "$skip") {
                pairs.append_pair(k, v);
            }
            pairs.append_pair("$skip", &end.to_string());
        }
        out["@odata.nextLink"] = Value::String(next.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_or_are_refused() {
        let props = ["internetMessageId"];
        let table: &[(&str, Option<&str>)] = &[
            ("internetMessageId eq '<a@b>'", Some("<a@b>")),
            ("  internetMessageId   eq   'it''s'  ", Some("it's")),
            ("internetMessageId eq '<a@b>' and subject eq 'x'", None),
            ("subject eq 'x'", None),
            ("internetMessageId ne 'x'", None),
            ("internetMessageId eq 'open", None),
            ("internetMessageId eq x", None),
        ];
        for (text, want) in table {
            let got = parse_filter(text, &props).ok().map(|f| f.value);
            assert_eq!(got.as_deref(), *want, "{text}");
        }
    }

    #[test]
    fn paging_links_carry_the_other_options() {
        let q = parse(
            vec![
                ("$top".into(), "2".into()),
                ("includeHiddenFolders".into(), "true".into()),
            ],
            &[],
        )
        .expect("valid test input");
        let uri: Uri = "/v1.0/users/a@b/mailFolders?$top=2"
            .parse()
            .expect("valid test input");
        let values = (0..5).map(|i| json!(i)).collect();
        let out = page("http://127.0.0.1:1", &uri, &q, 10, values, "ctx");
        assert_eq!(out["value"], json!([0, 1]));
        let next = out["@odata.nextLink"].as_str().expect("valid test input");
        assert_eq!(
            next,
            "http://127.0.0.1:1/v1.0/users/a@b/mailFolders?%24top=2&includeHiddenFolders=true&%24skip=2"
        );
        let bad = parse(vec![("$orderby".into(), "x".into())], &[]);
        assert!(bad.is_err());
    }
}
