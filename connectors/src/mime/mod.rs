//! Reading MIME the way Exchange targets need it: raw 8-bit header bytes decoded
//! ([`charset`]), and the shapes of message that only a MIME path carries faithfully
//! ([`shape`]).

pub(crate) mod charset;
pub mod shape;
