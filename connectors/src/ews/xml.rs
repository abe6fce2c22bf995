//! The XML side of the EWS client: escaping for the requests we write, the SOAP
//! envelope around them, and a small element tree for the answers.
//!
//! Answers are read by local name only (`m:ResponseCode`, `ResponseCode` and
//! `e:ResponseCode` are the same element): Exchange, proxies and the emulator choose
//! their own prefixes and default namespaces, and EWS has no two elements that differ
//! only by namespace where we look. All quick-xml use lives here, because quick-xml
//! changes its API in minor releases (research/crates.md).

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// SOAP 1.1 envelope namespace.
const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// EWS types namespace (`t:`).
const TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
/// EWS messages namespace (`m:`).
const MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";

/// Escapes text or an attribute value (`<`, `>`, `&`, `'`, `"`).
pub(super) fn esc(s: &str) -> String {
    escape(s).into_owned()
}

/// A SOAP request up to its body's content; then the body, then [`ENVELOPE_CLOSE`].
/// `header` and the body are `t:`/`m:`-prefixed XML that the caller built with [`esc`]
/// for every value.
pub(super) fn envelope_open(header: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP}" xmlns:t="{TYPES}" xmlns:m="{MESSAGES}"><soap:Header>{header}</soap:Header><soap:Body>"#
    )
}

/// The end of a SOAP request (see [`envelope_open`]).
pub(super) const ENVELOPE_CLOSE: &str = "</soap:Body></soap:Envelope>";

/// One element of an answer: local name, attributes by local name, children, text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Element {
    pub(super) name: String,
    pub(super) attrs: Vec<(String, String)>,
    pub(super) children: Vec<Element>,
    pub(super) text: String,
}

impl Element {
    /// The first child called `name`.
    pub(super) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The element reached by following `names` child by child.
    pub(super) fn path(&self, names: &[&str]) -> Option<&Element> {
        names.iter().try_fold(self, |e, name| e.child(name))
    }

    /// The value of the attribute called `name`.
    pub(super) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trimmed text of the child called `name`.
    pub(super) fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// Every element below this one (depth first), this one excluded.
    pub(super) fn descendants(&self) -> Vec<&Element> {
        let mut out = Vec::new();
        let mut stack: Vec<&Element> = self.children.iter().rev().collect();
        while let Some(e) = stack.pop() {
            out.push(e);
            stack.extend(e.children.iter().rev());
        }
        out
    }
}

/// Parses a document into its root element; the error says what is wrong.
pub(super) fn parse(xml: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        let finished = match event {
            Event::Start(e) => {
                stack.push(open(&e)?);
                None
            }
            Event::Empty(e) => close(&mut stack, open(&e)?),
            Event::End(_) => {
                let element = stack.pop().ok_or("unbalanced end tag")?;
                close(&mut stack, element)
            }
            Event::Text(t) => {
                push_text(&mut stack, &t.xml_content(XmlVersion::Implicit1_0));
                None
            }
            Event::CData(t) => {
                push_text(&mut stack, &t.xml_content(XmlVersion::Implicit1_0));
                None
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.xml_content(XmlVersion::Implicit1_0);
                        resolve_predefined_entity(&name)
                            .ok_or(format!("unknown entity &{name};"))?
                            .to_owned()
                    }
                };
                push_text(&mut stack, &c);
                None
            }
            Event::Eof => return Err("the document ended before its root element closed".into()),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => None,
        };
        if let Some(root) = finished {
            return Ok(root);
        }
    }
}

/// Adds a finished element to its parent; returns it when it is the root.
fn close(stack: &mut [Element], element: Element) -> Option<Element> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(element);
            None
        }
        None => Some(element),
    }
}

fn push_text(stack: &mut [Element], text: &str) {
    if let Some(top) = stack.last_mut() {
        top.text.push_str(text);
    }
}

fn open(e: &BytesStart<'_>) -> Result<Element, String> {
    let mut attrs = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        attrs.push((
            attr.key.local_name().into_inner().to_owned(),
            value.into_owned(),
        ));
    }
    Ok(Element {
        name: e.local_name().into_inner().to_owned(),
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_do_not_matter() {
        let prefixed = r#"<s:Envelope xmlns:s="x" xmlns:m="y"><s:Body><m:Code a="1 &amp; 2">x &lt; y&#33;</m:Code></s:Body></s:Envelope>"#;
        let default = r#"<Envelope xmlns="x"><Body><Code xmlns="y" a="1 &amp; 2"><![CDATA[x < y]]>!</Code></Body></Envelope>"#;
        for xml in [prefixed, default] {
            let root = parse(xml).expect("well-formed");
            assert_eq!(root.name, "Envelope");
            let code = root.path(&["Body", "Code"]).expect("code");
            assert_eq!(code.text, "x < y!");
            assert_eq!(code.attr("a"), Some("1 & 2"));
        }
    }

    #[test]
    fn broken_documents_are_refused() {
        for bad in ["<a><b></a>", "<a>", "", "<a>&nope;</a>", "<html><body>503"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn escaping_round_trips() {
        let nasty = r#"<a href="x">'&'</a>"#;
        let xml = format!(r#"<v n="{0}">{0}</v>"#, esc(nasty));
        let v = parse(&xml).expect("well-formed");
        assert_eq!((v.attr("n"), v.text.as_str()), (Some(nasty), nasty));
        let env = format!("{}<m:Op/>{ENVELOPE_CLOSE}", envelope_open("<t:H/>"));
        let root = parse(&env).expect("well-formed");
        assert!(root.path(&["Header", "H"]).is_some() && root.path(&["Body", "Op"]).is_some());
    }

    #[test]
    fn descendants_are_depth_first() {
        let root = parse("<a><b><c/></b><d/></a>").expect("well-formed");
        let names: Vec<&str> = root.descendants().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "d"]);
    }
}
