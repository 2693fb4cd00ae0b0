//! Tests that cannot run here (not root, a tool missing) say why and skip, so a developer's
//! unprivileged `cargo test` stays useful; where `IOMAP_REQUIRE_ALL` is set (CI sets it) the
//! same condition fails the test instead, so a green CI means every test ran.

/// The variable that turns skips into failures.
pub const REQUIRE_ALL: &str = "IOMAP_REQUIRE_ALL";

/// `test` cannot run because of `why`: prints that it skips, or panics under
/// [`REQUIRE_ALL`].
pub fn skip(test: &str, why: &str) {
    assert!(
        std::env::var_os(REQUIRE_ALL).is_none(),
        "{test}: cannot run: {why} ({REQUIRE_ALL} is set, so this is a failure, not a skip)"
    );
    eprintln!("{test}: skipped: {why}");
}

/// Whether a test that needs root (loop mounts, FUSE, BPF) may run; see [`skip`].
pub fn root_or_skip(test: &str) -> bool {
    if crate::kernel::is_root() {
        return true;
    }
    skip(
        test,
        &format!("needs root (effective uid {})", crate::kernel::euid()),
    );
    false
}
