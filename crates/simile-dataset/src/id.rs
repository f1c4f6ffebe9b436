use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use rand::RngCore;

use crate::{DatasetError, Result};

/// A new 24-hex-character id in the shape of a MongoDB/FiftyOne ObjectId:
/// 4 bytes of seconds since the epoch, 5 random bytes fixed per process, a 3-byte counter.
pub fn new_object_id() -> String {
    static PROCESS: OnceLock<[u8; 5]> = OnceLock::new();
    static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
    let process = PROCESS.get_or_init(|| {
        let mut b = [0u8; 5];
        rand::rng().fill_bytes(&mut b);
        b
    });
    let counter = COUNTER.get_or_init(|| AtomicU32::new(rand::rng().next_u32()));
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    let c = counter.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(24);
    for b in secs
        .to_be_bytes()
        .iter()
        .chain(process.iter())
        .chain(&c.to_be_bytes()[1..])
    {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// Whether `s` looks like an ObjectId (24 hex characters).
pub fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks an id given by a user.
pub fn check_object_id(s: &str) -> Result<()> {
    if is_object_id(s) {
        Ok(())
    } else {
        Err(DatasetError::InvalidId(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_hex() {
        let a = new_object_id();
        let b = new_object_id();
        assert!(is_object_id(&a) && is_object_id(&b));
        assert_ne!(a, b);
        assert!(!is_object_id("xyz"));
        assert!(check_object_id("0123456789abcdef01234567").is_ok());
        assert!(matches!(
            check_object_id("nope"),
            Err(DatasetError::InvalidId(_))
        ));
    }
}
