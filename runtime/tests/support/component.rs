//! Guest components changed the way the server must notice.

use wasm_encoder::{CustomSection, Section};

/// `component` with a custom section appended: same behaviour, new content
/// hash (`tag` tells variants apart).
pub fn variant(component: &[u8], tag: u32) -> Vec<u8> {
    let mut out = component.to_vec();
    CustomSection {
        name: "elements-test".into(),
        data: tag.to_le_bytes().to_vec().into(),
    }
    .append_to(&mut out);
    out
}
