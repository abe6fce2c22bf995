//! EWS (`POST /EWS/Exchange.asmx`, SOAP 1.1): the request checks and the folder
//! operations `CreateFolder`, `FindFolder`, `GetFolder`; `CreateItem` is in
//! [`super::ews_items`], `FindItem` in [`super::ews_find`].
//!
//! Order of checks: bearer token for `https://outlook.office365.com` with
//! `full_access_as_app` (401/403), injected faults (HTTP 500 `ErrorServerBusy` with
//! `BackOffMilliseconds`, 503, 413), the request size IIS takes (bare 413),
//! well-formed envelope, `RequestServerVersion` (fault `ErrorInvalidServerVersion`),
//! `ExchangeImpersonation` (fault `ErrorInvalidExchangeImpersonationHeaderData`,
//! `ErrorNonExistentMailbox`, `ErrorImpersonateUserDenied`,
//! `ErrorMailboxStoreUnavailable` for a mailbox not provisioned [U which code]),
//! `X-AnchorMailbox` naming the impersonated mailbox (HTTP 500
//! `ErrorInternalServerError` without it, when required), then the operation. Per-item and per-folder errors are
//! response messages with `ResponseClass="Error"` inside an HTTP 200, as EWS does.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::auth::{self, Audience};
use super::ews_find;
use super::ews_get;
use super::ews_items;
use super::ews_xml::{self, Element, MESSAGES, SOAP, TYPES, esc};
use super::faults::{Action, RequestKind};
use super::pipeline::{Slot, SlotKind};
use super::state::{Folder, Ids, Inner, Mailbox, State};
use super::throttle::Limits;

/// `RequestServerVersion` values EWS accepts (requestserverversion reference,
/// plus what exchangelib sends to Exchange Online).
const VERSIONS: &[&str] = &[
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2015",
    "Exchange2016",
    "Exchange2019",
    "V2015_10_05",
    "V2016_01_06",
    "V2016_04_13",
    "V2016_07_13",
    "V2016_10_10",
    "V2017_01_07",
    "V2017_04_14",
    "V2017_07_11",
    "V2017_10_09",
    "V2018_01_08",
];

/// EWS's most common page cap (EWSFindCountLimit).
const FIND_COUNT_LIMIT: usize = 1000;

/// An error that fails the whole request as a SOAP fault (HTTP 500).
pub(crate) struct SoapFault {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

pub(crate) fn soap_fault(code: &'static str, message: impl Into<String>) -> SoapFault {
    SoapFault {
        code,
        message: message.into(),
    }
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

/// `POST /EWS/Exchange.asmx`.
pub(crate) async fn ews(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match auth::check(&state, &headers, Audience::Ews) {
        Err(failure) => {
            let mut response = StatusCode::UNAUTHORIZED.into_response();
            let diag = format!("2000003;reason=\"{}\"", failure.message());
            if let Ok(v) = HeaderValue::from_str(&diag) {
                response.headers_mut().insert("x-ms-diagnostics", v);
            }
            return response;
        }
        Ok(roles) if !roles.iter().any(|r| r == "full_access_as_app") => {
            return StatusCode::FORBIDDEN.into_response();
        }
        Ok(_) => {}
    }
    match state.with(|inner| inner.faults.take_before(RequestKind::Ews)) {
        Some(Action::EwsServerBusy(ms)) => {
            let message = "The server cannot service this request right now. Try again later.";
            let fault = ews_xml::fault("ErrorServerBusy", message, Some(ms));
            return xml(StatusCode::INTERNAL_SERVER_ERROR, fault);
        }
        Some(Action::Ews413) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
        Some(Action::Ews503(after)) => {
            let mut response = StatusCode::SERVICE_UNAVAILABLE.into_response();
            if let Some(after) = after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs()));
            }
            return response;
        }
        _ => {}
    }
    if body.len() > state.config.ews_max_request_bytes {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let parsed = match parse_request(&body) {
        Ok(parsed) => parsed,
        Err(f) => return soap_fault_response(&f),
    };
    if let Err(f) = admit(&state, &parsed.address) {
        return soap_fault_response(&f);
    }
    let slot = Slot::new(Arc::clone(&state), &parsed.address, SlotKind::Ews);
    if state.config.ews_require_anchor_mailbox {
        let anchor = headers
            .get("x-anchormailbox")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        if !anchor.is_some_and(|a| a.eq_ignore_ascii_case(&parsed.address)) {
            return soap_fault_response(&soap_fault(
                "ErrorInternalServerError",
                format!(
                    "An internal server error occurred: requests impersonating {} must carry X-AnchorMailbox: {} (got {anchor:?}).",
                    parsed.address, parsed.address
                ),
            ));
        }
    }
    state.admitted_wait().await;
    let answer = execute(&state, &parsed);
    drop(slot);
    match answer {
        Ok(answer) => xml(StatusCode::OK, answer),
        Err(f) => soap_fault_response(&f),
    }
}

fn soap_fault_response(f: &SoapFault) -> Response {
    xml(
        StatusCode::INTERNAL_SERVER_ERROR,
        ews_xml::fault(f.code, &f.message, None),
    )
}

fn schema(message: impl Into<String>) -> SoapFault {
    soap_fault(
        "ErrorSchemaValidation",
        format!("The request failed schema validation: {}", message.into()),
    )
}

/// A well-formed request: its envelope and the impersonated address.
struct Parsed {
    root: Element,
    address: String,
}

impl Parsed {
    fn operation(&self) -> Option<&Element> {
        self.root
            .child(SOAP, "Body")
            .and_then(|b| b.children.first())
            .filter(|op| op.ns == MESSAGES)
    }
}

/// Checks the envelope and headers (no mailbox access yet).
fn parse_request(body: &[u8]) -> Result<Parsed, SoapFault> {
    let text = std::str::from_utf8(body).map_err(|_| schema("the body is not UTF-8"))?;
    let root = ews_xml::parse(text).map_err(schema)?;
    if !root.is(SOAP, "Envelope") {
        return Err(schema("the root element is not a SOAP 1.1 Envelope"));
    }
    let header = root.child(SOAP, "Header");
    let version = header
        .and_then(|h| h.child(TYPES, "RequestServerVersion"))
        .and_then(|v| v.attr("Version"));
    if !version.is_some_and(|v| VERSIONS.contains(&v)) {
        return Err(soap_fault(
            "ErrorInvalidServerVersion",
            "The specified server version is invalid.",
        ));
    }
    let sid = header
        .and_then(|h| h.child(TYPES, "ExchangeImpersonation"))
        .and_then(|i| i.child(TYPES, "ConnectingSID"))
        .ok_or_else(|| {
            soap_fault(
                "ErrorInvalidExchangeImpersonationHeaderData",
                "ExchangeImpersonation SOAP header must be present for this type of OAuth token.",
            )
        })?;
    let address = ["PrimarySmtpAddress", "SmtpAddress", "PrincipalName"]
        .iter()
        .find_map(|n| sid.child(TYPES, n))
        .map(|e| e.text.trim().to_owned())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            soap_fault(
                "ErrorInvalidExchangeImpersonationHeaderData",
                "ConnectingSID needs a PrimarySmtpAddress, SmtpAddress or PrincipalName (the emulator resolves no SIDs).",
            )
        })?;
    let parsed = Parsed { root, address };
    if parsed.operation().is_none() {
        return Err(schema("the Body holds no EWS operation"));
    }
    Ok(parsed)
}

/// The impersonated mailbox, if it exists and the app may impersonate it.
fn mailbox<'i>(
    inner: &'i mut Inner,
    address: &str,
    config: &super::EmulatorConfig,
) -> Result<&'i mut Mailbox, SoapFault> {
    let mailbox = inner.mailbox_or_auto(address, config).ok_or_else(|| {
        soap_fault(
            "ErrorNonExistentMailbox",
            "The SMTP address has no mailbox associated with it.",
        )
    })?;
    if !mailbox.settings.provisioned {
        return Err(soap_fault(
            "ErrorMailboxStoreUnavailable",
            "The mailbox database is temporarily unavailable.",
        ));
    }
    if mailbox.denied {
        return Err(soap_fault(
            "ErrorImpersonateUserDenied",
            "The account does not have permission to impersonate the requested user.",
        ));
    }
    Ok(mailbox)
}

/// Counts the request and takes one of the mailbox's EWS connection slots
/// (EWSMaxConcurrency; over it, `ErrorExceededConnectionCount`).
fn admit(state: &State, address: &str) -> Result<(), SoapFault> {
    let limits = Limits {
        concurrency: state.config.ews_max_concurrency,
        requests: u32::MAX,
        request_window: Duration::from_secs(600),
        upload_bytes: u64::MAX,
        upload_window: Duration::from_secs(300),
    };
    state.with(|inner| {
        let mailbox = mailbox(inner, address, &state.config)?;
        mailbox.ews_throttle.admit(&limits, Instant::now(), 0).map_err(|_| {
            soap_fault(
                "ErrorExceededConnectionCount",
                "You have exceeded the available concurrent connections for your account.  Try again once your other requests have completed.",
            )
        })
    })
}

fn execute(state: &State, parsed: &Parsed) -> Result<String, SoapFault> {
    let config = &state.config;
    let operation = parsed
        .operation()
        .ok_or_else(|| schema("the Body holds no EWS operation"))?;
    state.with(|inner| {
        mailbox(inner, &parsed.address, config)?;
        let Inner {
            mailboxes,
            ids,
            faults,
            ..
        } = inner;
        let mailbox = mailboxes
            .get_mut(&parsed.address.to_lowercase())
            .ok_or_else(|| soap_fault("ErrorNonExistentMailbox", "The mailbox is gone."))?;
        match operation.name.as_str() {
            "CreateItem" => ews_items::create_item(mailbox, ids, faults, operation, config),
            "GetItem" => ews_get::get_item(mailbox, operation),
            "GetAttachment" => ews_get::get_attachment(mailbox, operation),
            "CreateFolder" => create_folder(mailbox, ids, operation),
            "FindFolder" => find_folder(mailbox, operation),
            "GetFolder" => get_folder(mailbox, operation),
            "FindItem" => ews_find::find_item(mailbox, operation),
            other => Err(soap_fault(
                "ErrorInvalidRequest",
                format!("The emulator does not implement the EWS operation {other}."),
            )),
        }
    })
}

/// Resolves a `t:FolderId` or `t:DistinguishedFolderId` element. EWS distinguished
/// ids are a case-sensitive schema enum and have no `archive` alias (unlike Graph).
pub(crate) fn folder_ref<'m>(
    mailbox: &'m Mailbox,
    element: &Element,
) -> Result<&'m Folder, (&'static str, String)> {
    let not_found = || {
        (
            "ErrorItemNotFound",
            "The specified object was not found in the store.".to_owned(),
        )
    };
    let id = element.attr("Id").unwrap_or_default();
    if element.is(TYPES, "FolderId") {
        mailbox
            .folders
            .iter()
            .find(|f| f.id == id)
            .ok_or_else(not_found)
    } else if element.is(TYPES, "DistinguishedFolderId") && id != "archive" {
        mailbox
            .folders
            .iter()
            .find(|f| f.well_known == Some(id))
            .ok_or_else(not_found)
    } else {
        Err((
            "ErrorInvalidIdMalformed",
            format!("'{}' is not a folder id element.", element.name),
        ))
    }
}

fn folder_xml(mailbox: &Mailbox, folder: &Folder) -> String {
    let items = mailbox.items.iter().filter(|i| i.folder == folder.id);
    let total = items.clone().count();
    let unread = items.filter(|i| !i.is_read).count();
    let children = mailbox
        .folders
        .iter()
        .filter(|f| f.parent.as_deref() == Some(folder.id.as_str()))
        .count();
    let parent = folder.parent.as_deref().map_or_else(String::new, |p| {
        format!(
            r#"<t:ParentFolderId Id="{}" ChangeKey="AQAAAA=="/>"#,
            esc(p)
        )
    });
    format!(
        r#"<t:Folder><t:FolderId Id="{}" ChangeKey="AQAAAA=="/>{parent}<t:FolderClass>{}</t:FolderClass><t:DisplayName>{}</t:DisplayName><t:TotalCount>{total}</t:TotalCount><t:ChildFolderCount>{children}</t:ChildFolderCount><t:UnreadCount>{unread}</t:UnreadCount></t:Folder>"#,
        esc(&folder.id),
        folder.class,
        esc(&folder.name)
    )
}

fn create_folder(mailbox: &mut Mailbox, ids: &mut Ids, op: &Element) -> Result<String, SoapFault> {
    let parent = op
        .child(MESSAGES, "ParentFolderId")
        .and_then(|p| p.children.first())
        .ok_or_else(|| schema("CreateFolder needs a ParentFolderId"))?;
    let folders = op
        .child(MESSAGES, "Folders")
        .ok_or_else(|| schema("CreateFolder needs Folders"))?;
    let parent = folder_ref(mailbox, parent).map(|f| f.id.clone());
    let mut out = String::new();
    for folder in &folders.children {
        let name = folder
            .child(TYPES, "DisplayName")
            .map(|n| n.text.clone())
            .unwrap_or_default();
        let result = match &parent {
            Err((code, text)) => Err((*code, text.clone())),
            Ok(_) if name.trim().is_empty() => Err(("ErrorInvalidFolderName", "A folder needs a DisplayName.".to_owned())),
            Ok(parent) => mailbox
                .create_folder(ids, parent, &name, false)
                .map(|f| format!(r#"<m:Folders><t:Folder><t:FolderId Id="{}" ChangeKey="AQAAAA=="/></t:Folder></m:Folders>"#, esc(&f.id)))
                .map_err(|()| ("ErrorFolderExists", "A folder with the specified name already exists.".to_owned())),
        };
        out.push_str(&ews_xml::response_message(
            "CreateFolder",
            result,
            "Folders",
        ));
    }
    Ok(ews_xml::envelope("CreateFolderResponse", &out))
}

fn get_folder(mailbox: &Mailbox, op: &Element) -> Result<String, SoapFault> {
    let refs = op
        .child(MESSAGES, "FolderIds")
        .ok_or_else(|| schema("GetFolder needs FolderIds"))?;
    let mut out = String::new();
    for r in &refs.children {
        let result = folder_ref(mailbox, r)
            .map(|f| format!("<m:Folders>{}</m:Folders>", folder_xml(mailbox, f)));
        out.push_str(&ews_xml::response_message("GetFolder", result, "Folders"));
    }
    Ok(ews_xml::envelope("GetFolderResponse", &out))
}

fn descendants<'m>(mailbox: &'m Mailbox, parent: &str, deep: bool, out: &mut Vec<&'m Folder>) {
    for child in mailbox.children(parent, true, true) {
        out.push(child);
        if deep {
            descendants(mailbox, &child.id, deep, out);
        }
    }
}

fn find_folder(mailbox: &Mailbox, op: &Element) -> Result<String, SoapFault> {
    let deep = match op.attr("Traversal") {
        Some("Shallow") => false,
        Some("Deep") => true,
        other => {
            return Err(schema(format!(
                "FindFolder Traversal must be Shallow or Deep, not {other:?}"
            )));
        }
    };
    if op.child(MESSAGES, "FolderShape").is_none() {
        return Err(schema("FindFolder needs a FolderShape"));
    }
    let view = op.child(MESSAGES, "IndexedPageFolderView");
    let number = |name: &str, default: usize| -> Result<usize, SoapFault> {
        view.and_then(|v| v.attr(name)).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| schema(format!("{name} must be a number")))
        })
    };
    let max = number("MaxEntriesReturned", FIND_COUNT_LIMIT)?.min(FIND_COUNT_LIMIT);
    let offset = number("Offset", 0)?;
    let parents = op
        .child(MESSAGES, "ParentFolderIds")
        .ok_or_else(|| schema("FindFolder needs ParentFolderIds"))?;
    let mut out = String::new();
    for parent in &parents.children {
        let result = folder_ref(mailbox, parent).map(|p| {
            let mut all = Vec::new();
            descendants(mailbox, &p.id, deep, &mut all);
            let page: String = all.iter().skip(offset).take(max).map(|f| folder_xml(mailbox, f)).collect();
            let end = offset.saturating_add(max).min(all.len());
            format!(
                r#"<m:RootFolder IndexedPagingOffset="{end}" TotalItemsInView="{}" IncludesLastItemInRange="{}"><t:Folders>{page}</t:Folders></m:RootFolder>"#,
                all.len(),
                end >= all.len()
            )
        });
        out.push_str(&ews_xml::response_message(
            "FindFolder",
            result,
            "RootFolder",
        ));
    }
    Ok(ews_xml::envelope("FindFolderResponse", &out))
}
