// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The platform channel (Documentation/bmgnic/platform.rst), as far as its
//! two ends must agree beyond its JSON: the names of checkpoints, which
//! the RME's Redfish service takes from a client and the board turns into
//! file names in provider storage, and of the images the RME fetches for
//! the virtual CD and stores on the board; and the board's provisioning
//! port, as the provisioner that network-boots the server sees it.

/// The longest checkpoint name, in bytes.
pub const CHECKPOINT_NAME_MAX: usize = 64;

/// Whether `name` may name a checkpoint: 1 to [`CHECKPOINT_NAME_MAX`]
/// ASCII letters, digits, `-`, `_` or `.`, not starting with a dot, so
/// that it is a plain file name that leaves no directory.
pub fn checkpoint_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= CHECKPOINT_NAME_MAX
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Every image the RME stores on the board has a name with this prefix,
/// so that no store can replace the provider's own media (the erase
/// medium) in the same directory.
pub const REMOTE_MEDIA_PREFIX: &str = "remote-";
/// The most bytes of an image one `media-store` request carries: in
/// base64, with the rest of the request, well inside a channel line.
pub const MEDIA_CHUNK: usize = 32 * 1024;
/// The largest image the board stores.
pub const REMOTE_MEDIA_MAX: u64 = 4 << 30;

/// Whether `name` may name a stored image: [`REMOTE_MEDIA_PREFIX`] and
/// then what [`checkpoint_name_ok`] takes.
pub fn remote_media_name_ok(name: &str) -> bool {
    name.strip_prefix(REMOTE_MEDIA_PREFIX)
        .is_some_and(checkpoint_name_ok)
}

/// The provisioning port's MAC (locally administered): the address a
/// provisioner knows the server's network boot by, and the `BOOTIF=`
/// its iPXE script passes on.
pub const NETBOOT_MAC: &str = "52:54:00:b0:07:01";
/// The file the provisioning network's DHCP names as the boot file, in
/// the board's netboot directory: an iPXE script
/// (`scripts/build-provision-image.sh` writes it).
pub const NETBOOT_FILE: &str = "boot.ipxe";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_images_are_apart_from_the_providers() {
        assert!(remote_media_name_ok("remote-install.iso"));
        for bad in [
            "install.iso",
            "remote-",
            "remote-../x",
            "remote-.x",
            "erase.iso",
        ] {
            assert!(!remote_media_name_ok(bad), "{bad}");
        }
    }

    #[test]
    fn checkpoint_names_are_plain_file_names() {
        for good in ["c1", "tenant-42.ckpt_2", "a.b"] {
            assert!(checkpoint_name_ok(good), "{good}");
        }
        let long = [b'x'; CHECKPOINT_NAME_MAX + 1];
        let long = core::str::from_utf8(&long).unwrap_or("");
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a b", "é", long] {
            assert!(!checkpoint_name_ok(bad), "{bad}");
        }
    }
}
