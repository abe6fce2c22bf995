//! The router: which Graph path one message takes, and what it loses there (issue 11
//! §2). The client ([`super::GraphClient::import`]) and `mailhaul plan` decide with the
//! same functions, so the plan's counts are what the migration does.
//!
//! - `upload = "import-mime"`: importMime, except a message whose base64 passes Graph's
//!   4 MB request limit (JSON: its raw MIME is lost, and what its shape needs) and a
//!   draft that needs no MIME (JSON, which keeps it an editable draft; importMime makes
//!   received items).
//! - `upload = "json"`: JSON, except a message of a shape JSON cannot carry (S/MIME,
//!   meetings, TNEF, reports) when `mime_route = "import-mime"` allows importMime and
//!   the message fits one request; otherwise it goes by JSON with its loss recorded.

use super::{REQUEST_LIMIT, UploadPath};
use crate::mime::shape::Shape;
use mailhaul_proto::ledger::Lost;

/// What the router knows of a message before it decides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts {
    /// The client's upload setting.
    pub(crate) upload: UploadPath,
    /// `mime_route = "import-mime"`.
    pub(crate) mime_route: bool,
    /// The MIME's size in bytes.
    pub(crate) size: usize,
    /// `\Draft`.
    pub(crate) draft: bool,
}

impl Facts {
    /// Whether the message's base64 fits one Graph request.
    pub(crate) fn fits(&self) -> bool {
        self.size.div_ceil(3) * 4 <= REQUEST_LIMIT
    }

    /// Whether the decision needs the message's [`Shape`] (which costs a parse).
    pub(crate) fn needs_shape(&self) -> bool {
        match self.upload {
            UploadPath::ImportMime => self.fits() && self.draft,
            UploadPath::JsonCreate => self.mime_route && self.fits(),
        }
    }

    /// The path for a message of `shape` (`None` when [`Facts::needs_shape`] is false
    /// and the caller did not look).
    pub(crate) fn path(&self, shape: Option<Shape>) -> UploadPath {
        let needs_mime = shape.is_some_and(Shape::needs_mime);
        match self.upload {
            UploadPath::ImportMime if self.fits() && (!self.draft || needs_mime) => {
                UploadPath::ImportMime
            }
            UploadPath::JsonCreate if self.mime_route && self.fits() && needs_mime => {
                UploadPath::ImportMime
            }
            _ => UploadPath::JsonCreate,
        }
    }

    /// What a message of `shape` loses on `path` (importMime: always the received date),
    /// beyond what the conversion finds, such as dropped addresses.
    pub(crate) fn lost(&self, path: UploadPath, shape: Shape) -> Lost {
        match path {
            UploadPath::ImportMime if self.draft => Lost::RECEIVED | Lost::DRAFT,
            UploadPath::ImportMime => Lost::RECEIVED,
            UploadPath::JsonCreate => {
                let mut lost = shape.lost_by_json;
                if self.upload == UploadPath::ImportMime && !self.fits() {
                    lost |= Lost::RAW_MIME;
                }
                lost
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_decides_per_message() {
        use UploadPath::{ImportMime as M, JsonCreate as J};
        let plain = Shape::default();
        let meeting = Shape {
            lost_by_json: Lost::MEETING,
        };
        const R: Lost = Lost::RECEIVED;
        let big = REQUEST_LIMIT; // base64 of this many bytes passes the limit
        // (upload, mime_route, size, draft, shape) -> (path, lost)
        let table = [
            ((M, false, 1000, false, plain), (M, R)),
            ((M, false, 1000, false, meeting), (M, R)),
            ((M, false, 1000, true, plain), (J, Lost::NONE)),
            ((M, false, 1000, true, meeting), (M, R | Lost::DRAFT)),
            ((M, false, big, false, plain), (J, Lost::RAW_MIME)),
            (
                (M, false, big, false, meeting),
                (J, Lost::RAW_MIME | Lost::MEETING),
            ),
            ((J, false, 1000, false, plain), (J, Lost::NONE)),
            ((J, false, 1000, false, meeting), (J, Lost::MEETING)),
            ((J, true, 1000, false, plain), (J, Lost::NONE)),
            ((J, true, 1000, false, meeting), (M, R)),
            ((J, true, 1000, true, meeting), (M, R | Lost::DRAFT)),
            ((J, true, big, false, meeting), (J, Lost::MEETING)),
        ];
        for ((upload, mime_route, size, draft, shape), want) in table {
            let f = Facts {
                upload,
                mime_route,
                size,
                draft,
            };
            let looked = f.needs_shape().then_some(shape);
            let path = f.path(looked);
            assert_eq!((path, f.lost(path, shape)), want, "{f:?} {shape:?}");
        }
    }
}
