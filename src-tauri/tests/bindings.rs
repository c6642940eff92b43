//! The checked-in `ui/src/bindings.ts` must match the Rust commands and
//! events. Regenerate it with
//! `HEARTH_UPDATE_BINDINGS=1 cargo test -p hearth-desktop --test bindings`.

use std::path::PathBuf;

#[test]
fn typescript_bindings_are_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/src/bindings.ts");
    let generated = hearth_desktop::typescript_bindings().expect("the bindings export");
    if std::env::var_os("HEARTH_UPDATE_BINDINGS").is_some() {
        std::fs::write(&path, &generated).expect("ui/src/bindings.ts is writable");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} is stale: run `HEARTH_UPDATE_BINDINGS=1 cargo test -p hearth-desktop --test bindings` and commit the result",
        path.display()
    );
}
