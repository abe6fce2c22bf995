//! The XML side of the EWS emulator: a small namespace-resolved element tree read with
//! quick-xml's `NsReader` (so `t:`/`m:` prefixes and default namespaces are the same
//! thing), and the SOAP envelopes and faults EWS answers with.
//!
//! All XML handling lives here because quick-xml breaks its API in minor releases
//! (crates.md); the EWS handlers only see [`Element`] and strings.

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, XmlVersion};

/// SOAP 1.1 envelope namespace.
pub(crate) const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// EWS types namespace (`t:`).
pub(crate) const TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
/// EWS messages namespace (`m:`).
pub(crate) const MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
const ERRORS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";

/// One element: namespace URI, local name, attributes by local name, children, text.
#[derive(Clone, Debug, Default)]
pub(crate) struct Element {
    pub(crate) ns: String,
    pub(crate) name: String,
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) children: Vec<Element>,
    pub(crate) text: String,
}

impl Element {
    pub(crate) fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    pub(crate) fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a document into its root element; the error says what is wrong.
pub(crate) fn parse(xml: &str) -> Result<Element, String> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(|e| e.to_string())?;
        let ns = match resolved {
            ResolveResult::Bound(ns) => ns.into_inner().to_owned(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(prefix) => {
                return Err(format!("undeclared namespace prefix '{prefix}'"));
            }
        };
        match event {
            Event::Start(e) => stack.push(open(&e, ns)?),
            Event::Empty(e) => {
                let element = open(&e, ns)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml_content(XmlVersion::Implicit1_0));
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml_content(XmlVersion::Implicit1_0));
                }
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
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c);
                }
            }
            Event::Eof => {
                return Err("the document ended before its root element closed".to_owned());
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
}

fn open(e: &quick_xml::events::BytesStart<'_>, ns: String) -> Result<Element, String> {
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
        ns,
        name: e.local_name().into_inner().to_owned(),
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// Escapes text or an attribute value.
pub(crate) fn esc(s: &str) -> String {
    escape(s).into_owned()
}

/// A successful EWS answer: `body` is the `m:…Response` element's content.
pub(crate) fn envelope(response: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}"><s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="20" MajorBuildNumber="8000" MinorBuildNumber="0" Version="V2018_01_08" xmlns:h="{TYPES}"/></s:Header><s:Body><m:{response} xmlns:m="{MESSAGES}" xmlns:t="{TYPES}"><m:ResponseMessages>{body}</m:ResponseMessages></m:{response}></s:Body></s:Envelope>"#
    )
}

/// One response message: success with `items`, or an error with `code` and `text`.
pub(crate) fn response_message(
    kind: &str,
    result: Result<String, (&str, String)>,
    container: &str,
) -> String {
    match result {
        Ok(items) => format!(
            r#"<m:{kind}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>{items}</m:{kind}ResponseMessage>"#
        ),
        Err((code, text)) => format!(
            r#"<m:{kind}ResponseMessage ResponseClass="Error"><m:MessageText>{}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:{container}/></m:{kind}ResponseMessage>"#,
            esc(&text)
        ),
    }
}

/// A SOAP fault (HTTP 500), with `BackOffMilliseconds` when given (ErrorServerBusy).
pub(crate) fn fault(code: &str, message: &str, back_off_ms: Option<u64>) -> String {
    let back_off = back_off_ms.map_or_else(String::new, |ms| {
        format!(r#"<t:MessageXml xmlns:t="{TYPES}"><t:Value Name="BackOffMilliseconds">{ms}</t:Value></t:MessageXml>"#)
    });
    let message = esc(message);
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}"><s:Body><s:Fault><faultcode xmlns:a="{TYPES}">a:{code}</faultcode><faultstring xml:lang="en-US">{message}</faultstring><detail><e:ResponseCode xmlns:e="{ERRORS}">{code}</e:ResponseCode><e:Message xmlns:e="{ERRORS}">{message}</e:Message>{back_off}</detail></s:Fault></s:Body></s:Envelope>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_default_namespaces_resolve_alike() {
        let prefixed = format!(
            r#"<soap:Envelope xmlns:soap="{SOAP}" xmlns:t="{TYPES}"><soap:Body><t:Subject a="1 &amp; 2">x &lt; y&#33;</t:Subject></soap:Body></soap:Envelope>"#
        );
        let default = format!(
            r#"<Envelope xmlns="{SOAP}"><Body><Subject xmlns="{TYPES}" a="1 &amp; 2"><![CDATA[x < y]]>!</Subject></Body></Envelope>"#
        );
        for xml in [prefixed, default] {
            let root = parse(&xml).expect("well-formed");
            assert!(root.is(SOAP, "Envelope"));
            let subject = root
                .child(SOAP, "Body")
                .and_then(|b| b.child(TYPES, "Subject"))
                .expect("subject");
            assert_eq!(subject.text, "x < y!");
            assert_eq!(subject.attr("a"), Some("1 & 2"));
        }
        assert!(parse("<a:b/>").is_err());
        assert!(parse("<a><b></a>").is_err());
    }

    #[test]
    fn faults_round_trip_through_the_parser() {
        let xml = fault("ErrorServerBusy", "busy", Some(5000));
        let root = parse(&xml).expect("well-formed");
        let f = root
            .child(SOAP, "Body")
            .and_then(|b| b.child(SOAP, "Fault"))
            .expect("fault");
        let value = f
            .child("", "detail")
            .and_then(|d| d.child(TYPES, "MessageXml"))
            .and_then(|m| m.child(TYPES, "Value"))
            .expect("back-off");
        assert_eq!(
            (value.attr("Name"), value.text.as_str()),
            (Some("BackOffMilliseconds"), "5000")
        );
    }
}
